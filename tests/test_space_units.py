"""The Space's service and ratings store without a model or a server (fast)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from ft_plugin.errors import UserError
from ft_plugin.evaluate.generation import Answer
from ft_plugin.space.loading import AdapterInfo
from ft_plugin.space.ratings import (
    RatingsStore,
    check_rating,
    hub_failure_reason,
    summary_markdown,
    with_push_notice,
)
from ft_plugin.space.service import Comparison, SpaceState
from ft_plugin.space.settings import Limits


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
    state = SimpleNamespace(ratings_push_error="ratings are kept locally")
    assert with_push_notice(state, "x") == "**Warning:** ratings are kept locally\n\nx"


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
    settings, notes = state.generation_settings(99, None, None)
    assert settings == {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0,
                        "max_time": 30.0} and "clamped to 16" in notes[0]  # fmt: skip
    with pytest.raises(UserError, match="too long"):
        state.check_prompt("x" * 11)
    answer = Answer("t", 1.0, 1, 1.0)
    pair = state.blind_pair(Comparison("q", "run", Answer("b", 1.0, 1, 1.0), answer, settings))
    assert pair[f"answer_{pair['tuned']}"] == "t" and "max_time" not in pair["settings"]
    record = state.rate(prompt="q", answer_a="x", answer_b="y", preference="b",
                        scores={"relevance": 5, "accuracy": 4, "readability": 3})  # fmt: skip
    assert (record["adapter"], record["preferred"]) == ("run", "tuned")
    lines = state.ratings_path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [record["id"]]
    assert state.ratings_push_error is None and state.scheduler is None
