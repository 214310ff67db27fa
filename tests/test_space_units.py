"""The Space's service and ratings store without a model or a server (fast)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from ft_plugin.errors import UserError
from ft_plugin.evaluate.generation import Answer
from ft_plugin.space.compare import Comparison
from ft_plugin.space.loading import AdapterInfo
from ft_plugin.space.ratings import (
    GeneratedPair,
    RatingsStore,
    check_rating,
    hub_failure_reason,
    summary_markdown,
    with_push_notice,
)
from ft_plugin.space.settings import Limits
from ft_plugin.space.state import SpaceState


def _state(tmp_path: Path, **limits: int) -> SpaceState:
    recipe = SimpleNamespace(base_model="me/base", adapter="lora")
    info = AdapterInfo("run", "default", "runs/run", tmp_path, recipe, 0, None)
    return SpaceState(
        None, [info], data_dir=tmp_path / "data", limits=Limits(**limits), rng=random.Random(1)
    )


def test_ratings_store_appends_reads_and_summarises(tmp_path: Path) -> None:
    store = RatingsStore(tmp_path)
    assert store.read() == [] and summary_markdown(store.summary()) == "No ratings yet."
    store.append({"a": "base", "b": "tuned", "relevance_a": 2, "relevance_b": 4,
                  "relevance": 4, "preferred": "tuned"})  # fmt: skip
    with store.path.open("a") as handle:
        handle.write("not json\n")  # skipped, with a warning
    summary = store.summary()
    assert summary["ratings"] == 1 and summary["preference"]["tuned"] == 1.0
    assert summary["scores"]["tuned"]["relevance"]["mean"] == 4.0
    assert summary["scores"]["base"]["relevance"]["mean"] == 2.0
    assert "1 rating(s)" in summary_markdown(summary)


def test_a_push_failure_reason_names_the_status_never_the_headers() -> None:
    exc = RuntimeError("Authorization: Bearer hf_secret")
    exc.response = SimpleNamespace(status_code=401)  # type: ignore[attr-defined]
    assert hub_failure_reason(exc).startswith("not authorised")
    assert "hf_secret" not in hub_failure_reason(RuntimeError("hf_secret"))
    rating = SimpleNamespace(push_error="ratings are kept locally")
    assert with_push_notice(rating, "x") == "**Warning:** ratings are kept locally\n\nx"


def test_check_rating_refuses_before_anything_is_written() -> None:
    answers = {"answer_a": "a", "answer_b": "b"}
    scores = {"relevance": 3, "accuracy": 3, "readability": 3}
    assert check_rating(answers, scores, "TIE", "A", 10) == (scores, "tie", "a")
    with pytest.raises(UserError, match="answer_b: longer than 1 characters"):
        check_rating({"answer_a": "a", "answer_b": "bb"}, scores, "a", "b", 1)
    with pytest.raises(UserError, match="scores: give relevance"):
        check_rating(answers, {}, "a", "b", 10)
    with pytest.raises(UserError, match="tuned: expected a or b"):
        check_rating(answers, scores, "a", "c", 10)


def test_service_checks_settings_and_rates_without_a_model(tmp_path: Path) -> None:
    state = _state(tmp_path, max_new_tokens=16, max_prompt_chars=10)
    settings, notes = state.comparing.generation_settings(99, None, None)
    assert settings == {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0,
                        "max_time": 30.0} and "clamped to 16" in notes[0]  # fmt: skip
    with pytest.raises(UserError, match="too long"):
        state.comparing.check_prompt("x" * 11)
    answer = Answer("t", 1.0, 1, 1.0)
    pair = state.comparing.blind_pair(
        Comparison("q", "run", Answer("b", 1.0, 1, 1.0), answer, settings)
    )
    assert pair[f"answer_{pair['tuned']}"] == "t" and "max_time" not in pair["settings"]
    scores = {"relevance": 5, "accuracy": 4, "readability": 3}
    with pytest.raises(UserError, match="did not generate these answers"):  # free text
        state.rating.rate(prompt="q", answer_a="x", answer_b="y", preference="b", scores=scores)
    assert not state.rating.path.exists()
    state.rating.pairs.add(None, GeneratedPair("q", "run", base="x", tuned="y"))
    record = state.rating.rate(
        prompt="q", answer_a="x", answer_b="y", preference="b", scores=scores
    )
    assert (record["adapter"], record["preferred"]) == ("run", "tuned")
    with pytest.raises(UserError, match="rated already"):  # one rating per pair
        state.rating.rate(prompt="q", answer_a="x", answer_b="y", preference="b", scores=scores)
    lines = state.rating.path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [record["id"]]
    assert state.rating.push_error is None and state.rating.scheduler is None


def _fake_job(root: Path, job_id: str, state: str) -> None:
    folder = root / job_id
    (folder / "run").mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"id": job_id, "state": state, "created": 1.0}))


def test_finished_jobs_beyond_the_cap_are_pruned_except_served_and_active(tmp_path: Path) -> None:
    from ft_plugin.space.training.jobs import TrainingJobs

    ids = [f"20260101-0000{i:02d}-abcdef" for i in range(6)]
    for job_id, state in zip(
        ids, ["done", "failed", "done", "stopped", "done", "done"], strict=True
    ):
        _fake_job(tmp_path, job_id, state)
    served = {tmp_path / ids[0] / "run"}  # the oldest, but served: kept
    jobs = TrainingJobs(tmp_path, keep_finished=2, in_use=lambda: served)
    assert sorted(jobs.prune()) == ids[1:4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [ids[0], ids[4], ids[5]]
    assert jobs.prune() == []  # nothing more to delete


def test_status_lines_escape_what_an_upload_named_and_say_stopping() -> None:
    from ft_plugin.space.training.views import status_markdown

    failed = status_markdown(
        {"state": "failed", "error": "bad ![x](http://evil/p.png) in rows.csv"}
    )
    assert "![x](" not in failed and "\\!\\[x\\]" in failed
    stopping = status_markdown({"state": "stopping", "step": 3, "max_steps": 10})
    assert stopping.startswith("**stopping**: step 3 / 10") and "current step ends" in stopping


def test_only_the_space_keys_are_overrides_and_each_is_a_recipe_key() -> None:
    from ft_plugin.config.schema import Recipe
    from ft_plugin.space.training.recipe import SPACE_KEYS, parse_overrides

    assert [key for key in SPACE_KEYS if key not in Recipe.model_fields] == []
    with pytest.raises(UserError, match="trust_remote_code, output_dir are not keys this Space"):
        parse_overrides('{"trust_remote_code": true, "lora_r": 4, "output_dir": "/x"}')
    with pytest.raises(UserError, match="lora_r: expected a number or a short word"):
        parse_overrides({"lora_r": {"a": 1}})
