"""The Gradio Space: named API endpoints through gradio_client, limits, ratings, the Space folder.

A tiny LoRA run (random tiny Llama, medical template, high learning rate so that base
and tuned answers differ) is served on 127.0.0.1 once for the module.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import threading
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_recipe
from space_helpers import PROMPT, build_tiny_space_run, free_port, serve, small_limits
from tiny import save_tiny_model

from ft_plugin import __version__
from ft_plugin.cli import space as space_cli
from ft_plugin.errors import UserError
from ft_plugin.hub import space_folder
from ft_plugin.space import launch as space_launch
from ft_plugin.space.ratings import GeneratedPair

# Trains tiny runs (in child processes) and serves the Space: minutes in all.
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def app():  # noqa: ANN201
    import ft_plugin.space

    return ft_plugin.space


@pytest.fixture(scope="module")
def space_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_space_run(tmp_path_factory.mktemp("spacerun"))


@pytest.fixture(scope="module")
def served(app, space_run: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    state = app.SpaceState.load(
        [str(space_run)],
        data_dir=tmp_path_factory.mktemp("spacedata"),
        limits=small_limits(),
        rng=random.Random(0),
    )
    server = serve(state)
    yield server
    server.client.close()
    server.demo.close()


def _greedy(state, prompt: str, max_new_tokens: int, *, adapter: bool) -> str:  # noqa: ANN001
    """The answer computed here, independently of the app: chat template, system prompt."""
    from ft_plugin.data.templates import load_template

    tokenizer, model = state.loaded.tokenizer, state.loaded.model
    messages = [
        {"role": "system", "content": load_template("medical").system_prompt.strip()},
        {"role": "user", "content": prompt},
    ]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode(), state.model_lock:
        model.set_adapter("default")
        context = contextlib.nullcontext() if adapter else model.disable_adapter()
        with context:
            ids = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
    return tokenizer.decode(
        ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    ).strip()


def _lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- API endpoints


def test_named_endpoints_are_listed(served) -> None:  # noqa: ANN001
    api = served.client.view_api(return_format="dict", print_info=False)
    named = api["named_endpoints"]
    assert set(named) == {"/compare", "/rate", "/evaluate", "/train_start", "/train_status",
                          "/train_stop", "/train_resume", "/train_serve",
                          "/train_on_ratings"}  # fmt: skip
    params = {
        name: [p["parameter_name"] for p in info["parameters"]] for name, info in named.items()
    }
    assert params["/compare"][:2] == ["prompt", "max_new_tokens"]
    # the signature the Space was specified with; per-answer scores are optional extras
    assert params["/rate"][:7] == ["prompt", "answer_a", "answer_b", "relevance", "accuracy",
                                   "readability", "preference"]  # fmt: skip
    assert params["/rate"][9:] == ["relevance_a", "accuracy_a", "readability_a", "relevance_b",
                                   "accuracy_b", "readability_b"]  # fmt: skip
    optional = [p["parameter_has_default"] for p in named["/rate"]["parameters"]]
    assert optional == [False] * 7 + [True] * 8
    assert params["/evaluate"] == ["file"]
    # who asks comes from the request (login, sign-in), never from a parameter
    assert params["/train_status"] == ["run_id"] and params["/train_serve"] == ["run_id", "replace"]
    assert params["/train_on_ratings"] == ["adapter", "overrides"]
    assert len(named["/compare"]["returns"]) == 2


def test_compare_base_is_the_disabled_adapter_and_differs_from_tuned(served) -> None:  # noqa: ANN001
    base, tuned = served.client.predict(PROMPT, 12, api_name="/compare")
    assert isinstance(base, str) and isinstance(tuned, str)
    assert base == _greedy(served.state, PROMPT, 12, adapter=False)
    assert tuned == _greedy(served.state, PROMPT, 12, adapter=True)
    assert base != tuned


def test_compare_refuses_bad_prompts_with_a_message(served) -> None:  # noqa: ANN001
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="301 characters is too long; the limit is 300 characters"):
        served.client.predict("x" * 301, 8, api_name="/compare")
    with pytest.raises(AppError, match="write a question first"):
        served.client.predict("   ", 8, api_name="/compare")
    with pytest.raises(AppError, match="max_new_tokens: 0 must be at least 1"):
        served.client.predict(PROMPT, 0, api_name="/compare")


def test_max_new_tokens_is_clamped_and_the_time_limit_passed_through(
    served,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    model = served.state.loaded.model
    original, calls = model.generate, []

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    base, tuned = served.client.predict(PROMPT, 10_000, api_name="/compare")
    assert isinstance(base, str) and isinstance(tuned, str)
    assert len(calls) == 2  # tuned, then base (adapter disabled)
    for kwargs in calls:
        assert kwargs["max_new_tokens"] == served.state.limits.max_new_tokens == 24
        assert kwargs["max_time"] == served.state.limits.max_time_s == 20.0
        assert kwargs["do_sample"] is False


def test_generation_stops_at_the_time_limit(served, app) -> None:  # noqa: ANN001
    state = served.state
    with state.model_lock, state.loaded.baseline() as model:
        answer = app.generate_answer(
            model, state.loaded.tokenizer, state.comparing.messages(PROMPT),
            max_new_tokens=2000, max_time=0.05,
        )  # fmt: skip
    assert answer.new_tokens < 2000
    assert answer.hit_time_limit and "time limit" in answer.stats()


def test_sampling_settings_are_checked(served) -> None:  # noqa: ANN001
    state = served.state
    with pytest.raises(UserError, match="temperature"):
        state.comparing.compare(PROMPT, max_new_tokens=4, temperature=5.0)
    with pytest.raises(UserError, match="top_p"):
        state.comparing.compare(PROMPT, max_new_tokens=4, temperature=0.7, top_p=0.0)
    sampled = state.comparing.compare(PROMPT, max_new_tokens=4, temperature=0.7, top_p=0.9)
    assert sampled.settings["temperature"] == 0.7 and sampled.tuned.new_tokens <= 4


def test_rate_takes_once_only_a_pair_this_client_got_from_compare(served) -> None:  # noqa: ANN001
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    path = served.state.rating.path
    before = _lines(path)
    base, tuned = served.client.predict(PROMPT, 12, api_name="/compare")
    assert base != tuned
    served.client.predict(PROMPT, 12, api_name="/compare")  # greedy: the same pair again
    message = served.client.predict(  # an existing client: the seven specified inputs only
        PROMPT, base, tuned, 4, 3, 5, "a", api_name="/rate"
    )
    assert "saved" in message and "preferred: base" in message
    record = _lines(path)[-1]
    assert [record[k] for k in ("relevance", "accuracy", "readability")] == [4, 3, 5]
    assert "relevance_a" not in record and record["settings"]["max_new_tokens"] == 12
    with pytest.raises(AppError, match="rated already"):  # one rating per pair
        served.client.predict(PROMPT, base, tuned, 4, 3, 5, "a", api_name="/rate")
    base, tuned = served.client.predict(PROMPT, 12, api_name="/compare")
    message = served.client.predict(
        PROMPT, base, tuned, 4, 4, 4, "a", relevance_a=4, accuracy_a=3,
        readability_a=5, relevance_b=2, accuracy_b=2, readability_b=1, api_name="/rate",
    )  # fmt: skip
    after = _lines(path)
    assert len(after) == len(before) + 2
    record = after[-1]
    assert record["prompt"] == PROMPT
    assert (record["answer_a"], record["answer_b"]) == (base, tuned)
    assert (record["a"], record["b"]) == ("base", "tuned")  # default: answer_b is tuned
    assert [record[k] for k in ("relevance_a", "accuracy_a", "readability_a")] == [4, 3, 5]
    assert [record[k] for k in ("relevance_b", "accuracy_b", "readability_b")] == [2, 2, 1]
    assert (record["preference"], record["preferred"]) == ("a", "base")
    assert record["source"] == "api" and record["adapter"] == served.state.adapter_labels[0]
    assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None
    base, tuned = served.client.predict(PROMPT, 12, api_name="/compare")
    other = Client(served.url, verbose=False)  # another visitor cannot rate this pair
    try:
        with pytest.raises(AppError, match="did not generate these answers for you"):
            other.predict(PROMPT, tuned, base, 5, 5, 5, "TIE", "a", api_name="/rate")
    finally:
        other.close()
    served.client.predict(PROMPT, tuned, base, 5, 5, 5, "TIE", "a", api_name="/rate")
    record = _lines(path)[-1]
    assert (record["a"], record["b"], record["preferred"]) == ("tuned", "base", "tie")
    with pytest.raises(AppError, match="did not generate these answers"):  # free text
        served.client.predict(PROMPT, "I wrote this", "and this", 5, 5, 5, "a", api_name="/rate")
    assert len(_lines(path)) == len(before) + 3


def test_ratings_are_capped_per_session_and_scrubbed(served, tmp_path: Path, app) -> None:  # noqa: ANN001
    from ft_plugin.space.ratings import GeneratedPair

    limits = app.Limits(max_ratings_per_session=2)
    state = app.SpaceState(served.state.loaded, list(served.state.adapters.values()),
                           data_dir=tmp_path, limits=limits)  # fmt: skip
    label, scores = state.adapter_labels[0], {"relevance": 3, "accuracy": 3, "readability": 3}
    prompt = "my mail is ann@example.org, what now?"
    for i in range(3):
        state.rating.pairs.add("s", GeneratedPair(prompt, label, base=f"b{i}", tuned=f"t{i}"))
    for i in range(2):
        state.rating.rate(prompt=prompt, answer_a=f"b{i}", answer_b=f"t{i}", scores=scores,
                          preference="a", session="s")  # fmt: skip
    with pytest.raises(UserError, match="2 ratings from one session is this Space's cap"):
        state.rating.rate(prompt=prompt, answer_a="b2", answer_b="t2", scores=scores,
                          preference="a", session="s")  # fmt: skip
    records = _lines(tmp_path / "ratings.jsonl")
    assert len(records) == 2 and records[0]["prompt"] == "my mail is [EMAIL], what now?"
    assert "ann@example.org" not in (tmp_path / "ratings.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize("bad", [0, 6, 3.5])
def test_rate_refuses_bad_scores_and_writes_nothing(served, bad) -> None:  # noqa: ANN001
    from gradio_client.exceptions import AppError

    path = served.state.rating.path
    before = path.read_bytes() if path.exists() else b""
    with pytest.raises(
        AppError, match=r"accuracy(_b)?: (expected an integer score from 1 to 5|give a)"
    ):
        served.client.predict(PROMPT, "a", "b", 3, bad, 3, "b", api_name="/rate")
    with pytest.raises(
        AppError, match=r"accuracy_b: (expected an integer score from 1 to 5|give a)"
    ):
        served.client.predict(PROMPT, "a", "b", 3, 3, 3, "b", relevance_a=3, accuracy_a=3,
                              readability_a=3, relevance_b=3, accuracy_b=bad, readability_b=3,
                              api_name="/rate")  # fmt: skip
    with pytest.raises(AppError, match="preference: expected a, b or tie"):
        served.client.predict(PROMPT, "a", "b", 3, 3, 3, "c", api_name="/rate")
    assert (path.read_bytes() if path.exists() else b"") == before


def test_ratings_summary_and_concurrent_appends(served, tmp_path: Path, app) -> None:  # noqa: ANN001
    state = app.SpaceState(
        served.state.loaded,
        list(served.state.adapters.values()),
        data_dir=tmp_path,
        limits=served.state.limits,
    )
    scores = dict.fromkeys(app.SCORE_FIELDS, 3) | {"relevance_b": 5}

    def one(i: int) -> None:
        label = state.adapter_labels[0]
        state.rating.pairs.add(f"s{i}", GeneratedPair(f"q{i}", label, base="a", tuned="b"))
        state.rating.rate(prompt=f"q{i}", answer_a="a", answer_b="b", scores=scores,
                          preference="b" if i % 4 else "tie", tuned="b", session=f"s{i}")  # fmt: skip

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = _lines(tmp_path / "ratings.jsonl")  # every line whole JSON
    assert len(records) == 16 and len({r["id"] for r in records}) == 16
    summary = state.rating.summary()
    assert summary["ratings"] == 16
    assert summary["scores"]["tuned"]["relevance"]["mean"] == 5.0
    assert summary["scores"]["base"]["relevance"]["mean"] == 3.0
    assert summary["preference"] == {"tuned": 0.75, "base": 0.0, "tie": 0.25}
    assert "16 rating(s)" in app.summary_markdown(summary)


def test_ratings_are_committed_to_a_hub_dataset_when_configured(
    served, app, tmp_path: Path
) -> None:  # noqa: ANN001
    """The real CommitScheduler against the test Hub server: the committed file reads back."""
    from hub_server import run_hub_server

    with run_hub_server() as hub, hub.patched_client():
        state = app.SpaceState(served.state.loaded, list(served.state.adapters.values()),
                               data_dir=tmp_path, ratings_dataset="test-user/ratings")  # fmt: skip
        try:
            assert state.rating.push_error is None
            assert state.rating.store.lock is state.rating.scheduler.lock
            state.rating.pairs.add(None, GeneratedPair("q", state.adapter_labels[0], "a", "b"))
            state.rating.rate(prompt="q", answer_a="a", answer_b="b", preference="b",
                              scores={"relevance": 4, "accuracy": 4, "readability": 5})  # fmt: skip
            state.rating.scheduler.trigger().result(timeout=60)
            committed = hub.read_file("test-user/ratings", "ratings.jsonl", repo_type="dataset")
        finally:
            state.rating.scheduler.stop()
        assert hub.get_repo("test-user/ratings", "dataset").private
    records = [json.loads(line) for line in committed.decode().splitlines()]
    assert [r["prompt"] for r in records] == ["q"] and records[0]["preferred"] == "tuned"


def test_a_ratings_push_that_cannot_start_is_said_in_the_log_and_the_page(
    served,
    app,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,  # noqa: ANN001
) -> None:
    from hub_server import run_hub_server

    with (
        run_hub_server() as hub,
        hub.patched_client(token="hf_not_a_valid_token"),
        caplog.at_level("ERROR", logger="ft_plugin.space"),
    ):
        state = app.SpaceState(served.state.loaded, list(served.state.adapters.values()),
                               data_dir=tmp_path, ratings_dataset="test-user/ratings")  # fmt: skip
    assert state.rating.scheduler is None
    assert (
        "not pushed to the Hub dataset test-user/ratings: not authorised" in state.rating.push_error
    )
    assert state.rating.push_error in caplog.text and "hf_not_a_valid_token" not in caplog.text
    from ft_plugin.space.ratings import with_push_notice

    page = with_push_notice(state.rating, "No ratings yet.")
    assert page.startswith("**Warning:** ratings are kept in") and "hf_not_a_valid" not in page
    state.rating.pairs.add(None, GeneratedPair("q", state.adapter_labels[0], "a", "b"))
    state.rating.rate(prompt="q", answer_a="a", answer_b="b", preference="a",
                      scores={"relevance": 3, "accuracy": 3, "readability": 3})  # fmt: skip
    assert len(_lines(tmp_path / "ratings.jsonl")) == 1  # the Space keeps working, locally


def test_evaluate_an_uploaded_jsonl(served, tmp_path: Path) -> None:  # noqa: ANN001
    from gradio_client import handle_file

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"instruction": f"What helps a cough, case {i}?",
                    "output": f"Rest, fluids and honey help a cough (case {i})."}) + "\n"
                    for i in range(6)), encoding="utf-8")  # fmt: skip
    report = served.client.predict(handle_file(str(rows)), api_name="/evaluate")
    target, baseline = report["models"]["target"], report["models"]["baseline"]
    for name in ("perplexity", "chrf", "rougeL", "latency_ms_p50", "tokens_per_second"):
        assert name in target and name in baseline
    assert target["perplexity"] != baseline["perplexity"]
    assert report["delta"]["perplexity"] == pytest.approx(
        target["perplexity"] - baseline["perplexity"], abs=1e-5
    )
    assert report["data"] == {"source": "rows.jsonl", "rows": 4, "rows_given": 6, "sampled": True,
                              "template": "medical", "group_by": None}  # capped: a seeded sample  # fmt: skip


def test_evaluate_refuses_bad_input(served, tmp_path: Path) -> None:  # noqa: ANN001
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(AppError, match="no rows to evaluate"):
        served.client.predict(handle_file(str(empty)), api_name="/evaluate")
    with pytest.raises(UserError, match="upload a JSONL or CSV file"):
        served.state.evaluation.evaluate(None)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match=r"notes.txt: expected one of \.jsonl"):
        served.state.evaluation.evaluate(str(text))


def test_evaluate_the_template_sample_writes_a_report(served) -> None:  # noqa: ANN001
    outcome = served.state.evaluation.evaluate(None, use_sample=True, max_rows=100)
    assert (
        outcome.report["data"]["rows"] == 4
        and outcome.report["data"]["source"] == "builtin:medical"
    )
    assert (outcome.folder / "report.json").is_file() and outcome.archive.suffix == ".zip"
    assert {p.name for p in outcome.plots} == {"comparison.png"}
    table = {row[0]: row for row in outcome.table()}
    assert table["perplexity"][1] == outcome.report["models"]["baseline"]["perplexity"]
    answers = outcome.answers_table()  # what each model said, as in predictions.jsonl
    written = [json.loads(line) for line in (outcome.folder / "predictions.jsonl").open()]
    assert [row[0] for row in answers] == [p["id"] for p in written] == [0, 1, 2, 3]
    for row, p in zip(answers, written, strict=True):
        assert row[1:5] == [p["prompt"], p["reference"], p["base_answer"], p["tuned_answer"]]
        key = "rougeL" if "rougeL" in p["tuned_scores"] else "chrf"
        assert row[5] == round(p["tuned_scores"][key] - p["base_scores"][key], 2)


def test_model_card_and_training_metrics(served) -> None:  # noqa: ANN001
    state = served.state
    card = state.card.markdown()
    assert "## Training metrics" in card and "medical" in card  # ft-plugin's card, built
    assert state.card.training_metrics()["steps"] == 4
    curves = state.card.training_curves()
    assert curves is not None and curves.is_file()


def test_a_model_card_that_cannot_be_built_says_why(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from huggingface_hub import ModelCard

    from ft_plugin.hub import card

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ValueError("metrics.json: not JSON")

    monkeypatch.setattr(ModelCard, "load", broken)
    monkeypatch.setattr(card, "build_card", broken)
    text = served.state.card.markdown()
    assert "could not be built (ValueError: metrics.json: not JSON)" in text
    assert text.startswith(f"# {served.state.adapter_labels[0]}")


# --------------------------------------------------------------------------- loading


def _copy_run(run: Path, dest: Path, **recipe_lines: str) -> Path:
    shutil.copytree(run, dest)
    text = (dest / "recipe.yaml").read_text(encoding="utf-8")
    for key, value in recipe_lines.items():
        lines = [line for line in text.splitlines() if line.startswith(f"{key}:")]
        assert lines, key
        text = text.replace(lines[0], f"{key}: {value}")
    (dest / "recipe.yaml").write_text(text, encoding="utf-8")
    return dest


def test_several_adapters_share_one_base(app, space_run: Path, tmp_path: Path) -> None:  # noqa: ANN001
    second = _copy_run(space_run, tmp_path / "second")
    state = app.SpaceState.load([str(space_run), str(second)], data_dir=tmp_path / "data")
    assert state.adapter_labels == ["run", "second"]
    assert set(state.loaded.model.peft_config) == {"default", "adapter_1"}
    first = state.comparing.compare(PROMPT, max_new_tokens=6, adapter="run")
    other = state.comparing.compare(PROMPT, max_new_tokens=6, adapter="second")
    assert other.tuned.text == first.tuned.text and other.base.text == first.base.text
    with pytest.raises(UserError, match="not loaded"):
        state.comparing.compare(PROMPT, max_new_tokens=6, adapter="third")


def test_refuses_other_bases_and_remote_code(app, space_run: Path, tmp_path: Path) -> None:  # noqa: ANN001
    other_base = save_tiny_model(tmp_path / "other-base", seed=1)
    other = _copy_run(space_run, tmp_path / "other", base_model=str(other_base))
    with pytest.raises(UserError, match="must share the base model"):
        app.SpaceState.load([str(space_run), str(other)], data_dir=tmp_path / "data")
    ia3 = _copy_run(space_run, tmp_path / "ia3")
    config = json.loads((ia3 / "adapter_config.json").read_text())
    (ia3 / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "IA3"}))
    with pytest.raises(UserError, match=r"different PEFT types \(IA3, LORA\)"):
        app.SpaceState.load([str(space_run), str(ia3)], data_dir=tmp_path / "data")
    remote = _copy_run(space_run, tmp_path / "remote", trust_remote_code="true")
    with pytest.raises(UserError, match="trust_remote_code"):
        app.SpaceState.load([str(remote)], data_dir=tmp_path / "data")
    pickled = _copy_run(space_run, tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(UserError, match="safetensors only"):
        app.SpaceState.load([str(pickled)], data_dir=tmp_path / "data")
    with pytest.raises(UserError, match="not a run directory"):
        app.SpaceState.load([str(other_base)], data_dir=tmp_path / "data")


def test_a_full_run_compares_with_its_own_base(app, space_run: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from ft_plugin.train import train

    full = train(tiny_recipe(tmp_path, "full", max_steps=1), str(tmp_path / "full")).run_dir
    state = app.SpaceState.load(str(full), data_dir=tmp_path / "data")
    assert state.adapter().peft_name is None
    result = state.comparing.compare("What is 2 plus 2?", max_new_tokens=6)
    with state.loaded.baseline() as base_model:
        assert base_model is not state.loaded.model
        again = app.generate_answer(base_model, state.loaded.tokenizer,
                                    state.comparing.messages("What is 2 plus 2?"), max_new_tokens=6)  # fmt: skip
    assert result.base.text == again.text
    with pytest.raises(UserError, match="must be PEFT adapters of one base model"):
        app.SpaceState.load([str(space_run), str(full)], data_dir=tmp_path / "data")


def test_launch_space_serves_the_app(space_run: Path, tmp_path: Path) -> None:
    import httpx

    port = free_port()
    demo = space_launch.launch_space(
        str(space_run), port=port, data_dir=tmp_path / "data", limits=small_limits(), block=False
    )
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "ft-plugin" in page.text
        assert demo.ft_plugin_state.data_dir == tmp_path / "data"
    finally:
        demo.close()


def test_a_hub_run_on_the_embedded_model_names_its_hub_id_without_the_package(
    app,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from ft_plugin.space.loading import with_reachable_base

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "recipe.yaml").write_text(
        "base_model: embedded:smollm2-135m-instruct\nadapter: lora\n"
        "datasets:\n  - path: builtin:medical\n    type: medical\n"
    )
    (snapshot / "adapter_config.json").write_text("{}")

    def missing(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    folder = with_reachable_base(snapshot, "me/run", tmp_path / "cache")
    assert folder == tmp_path / "cache" / "adapters" / "me--run"
    # rewritten through the recipe schema (RunDir.write_recipe), not by editing text
    rewritten = yaml.safe_load((folder / "recipe.yaml").read_text())
    assert (rewritten["base_model"], rewritten["adapter"]) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct", "lora",
    )  # fmt: skip
    assert rewritten["datasets"][0]["type"] == "medical"
    assert (folder / "adapter_config.json").is_file()
    assert "embedded:" in (snapshot / "recipe.yaml").read_text()  # the Hub cache is untouched


def test_space_config_from_env_or_config_yaml(app, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "config.yaml").write_text(
        "adapter: me/from-config\nratings_dataset: me/ratings\n", encoding="utf-8"
    )
    config = app.read_space_config(tmp_path, environ={})
    assert config.targets == ["me/from-config"] and config.ratings_dataset == "me/ratings"
    assert config.data_dir == tmp_path / "space_data"
    config = app.read_space_config(tmp_path, environ={"FT_PLUGIN_ADAPTER": "me/a, me/b"})
    assert config.targets == ["me/a", "me/b"]
    (tmp_path / "config.yaml").write_text("adapters: [me/x, me/y]\ndata_dir: /data\n")
    config = app.read_space_config(tmp_path, environ={})
    assert config.targets == ["me/x", "me/y"] and config.data_dir == Path("/data")
    (tmp_path / "config.yaml").unlink()
    config = app.read_space_config(tmp_path, environ={"FT_PLUGIN_MAX_TRAIN_STEPS": "50"})
    assert config.targets == [] and config.limits.max_train_steps == 50  # opens on Train
    (tmp_path / "config.yaml").write_text("limits:\n  max_train_rows: 99\n  nope: 1\n")
    with pytest.raises(UserError, match="limits.nope is not a Space limit"):
        app.read_space_config(tmp_path, environ={})


# --------------------------------------------------------------------------- the Space repo


def test_build_space_folder(tmp_path: Path) -> None:
    from huggingface_hub import SpaceCard

    from ft_plugin.space import SpaceState, build_app

    folder = space_folder.build_space_folder("me/medical-lora", tmp_path / "space")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "app.py", "config.yaml", "requirements.txt",
    ]  # fmt: skip
    assert (folder / "app.py").read_bytes() == space_folder.app_path().read_bytes()
    entry = space_launch.load_app_module()  # the thin entry point, as a Space runs it
    assert len(space_folder.app_path().read_text().splitlines()) < 60
    assert entry.build_app is build_app and entry.SpaceState is SpaceState
    requirements = (folder / "requirements.txt").read_text().splitlines()
    assert requirements[0] == f"ft-plugin=={__version__}"
    pins = dict(line.split("==") for line in requirements)
    for name in ("gradio[oauth]", "transformers", "peft", "torch", "huggingface_hub"):
        assert pins[name] == metadata.version(name.split("[")[0]).split("+")[0], name
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["adapter"] == "me/medical-lora" and config["train"] is False  # the default
    card = SpaceCard.load(folder / "README.md")
    data = card.data
    assert "hf_oauth" not in data.to_dict() and "Training is off" in card.text
    trained = space_folder.build_space_folder("me/medical-lora", tmp_path / "t", train=True)
    assert yaml.safe_load((trained / "config.yaml").read_text())["train"] is True
    assert SpaceCard.load(trained / "README.md").data.hf_oauth is True  # owner signs in
    assert (data.sdk, data.app_file, data.models) == ("gradio", "app.py", ["me/medical-lora"])
    assert data.sdk_version == metadata.version("gradio")
    assert data.title and data.emoji and data.colorFrom and data.colorTo and data.license
    assert 0 < len(data.short_description) <= 60
    assert SpaceCard(str(card)).data.to_dict() == data.to_dict()  # round trip
    with pytest.raises(UserError, match="not a Hub repo id"):
        space_folder.build_space_folder("not an id", tmp_path / "bad")


def space_command_ok(args: argparse.Namespace) -> bool:
    return space_cli.space_command(args) == 0


def test_cli_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="ft-plugin space")
    space_cli.add_space_arguments(parser)
    pushed, launched = [], []
    monkeypatch.setattr(space_folder, "push_space", lambda repo, adapter, private, train:
                        pushed.append((repo, adapter, private, train)) or "u")  # fmt: skip
    monkeypatch.setattr(space_launch, "launch_space",
                        lambda targets, **kw: launched.append((targets, kw)))  # fmt: skip
    push = ["push", "--repo-id", "me/s", "--adapter", "me/a"]
    with pytest.raises(UserError, match="choose who sees the Space: --private .* or --public"):
        space_cli.space_command(parser.parse_args(push))  # the owner chooses
    assert space_command_ok(parser.parse_args([*push, "--public"]))
    assert space_command_ok(parser.parse_args([*push, "--private", "--train"]))
    assert pushed == [("me/s", "me/a", False, False), ("me/s", "me/a", True, True)]
    with pytest.raises(UserError, match="--adapter required"):
        space_cli.space_command(parser.parse_args(["push", "--repo-id", "me/s"]))
    monkeypatch.delenv("FT_PLUGIN_SPACE_AUTH", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    args = parser.parse_args(["runs/a", "runs/b", "--port", "7999", "--data-dir", "d"])
    assert space_cli.space_command(args) == 0
    kwargs = launched[0][1]
    limits, access = kwargs.pop("limits"), kwargs.pop("access")
    assert launched == [(["runs/a", "runs/b"], {"host": "127.0.0.1", "port": 7999, "share": False,
                         "data_dir": Path("d"), "ratings_dataset": None, "base_models": []})]  # fmt: skip
    assert limits.max_train_steps == 2000 and access.mode == "local"
    launched.clear()
    monkeypatch.setenv("FT_PLUGIN_MAX_TRAIN_STEPS", "40")
    assert space_command_ok(parser.parse_args([])) and launched[0][0] == []  # no target: Train
    assert launched[0][1]["limits"].max_train_steps == 40
    launched.clear()
    monkeypatch.delenv("FT_PLUGIN_MAX_TRAIN_STEPS")
    config = tmp_path / "space.yaml"
    config.write_text("admins: [ann]\nbase_models: [me/base]\nlimits: {max_train_steps: 9}\n")
    args = parser.parse_args(
        ["--host", "0.0.0.0", "--auth", "ann:long-password", "--config", str(config)]
    )
    assert space_command_ok(args)
    kwargs = launched[0][1]
    assert kwargs["access"].mode == "password" and kwargs["access"].owners == {"ann"}
    assert kwargs["base_models"] == ["me/base"] and kwargs["limits"].max_train_steps == 9
    assert "long-password" not in repr(kwargs["access"])
    launched.clear()  # served beyond loopback with no sign-in: training off
    assert space_command_ok(parser.parse_args(["--host", "0.0.0.0"]))
    assert launched[0][1]["access"].mode == "off"
    with pytest.raises(UserError, match="belong to `ft-plugin space push`"):
        space_cli.space_command(parser.parse_args(["--public"]))
    with pytest.raises(UserError, match="stand-in .* 127.0.0.1 only"):
        space_cli.space_command(parser.parse_args(["--host", "0.0.0.0", "--local-sign-in"]))


def test_answer_stats_say_when_the_tokens_decode_to_no_visible_text(app) -> None:  # noqa: ANN001
    blank = app.Answer(text="", latency_ms=12.0, new_tokens=8, tokens_per_second=666.7)
    assert blank.stats() == (
        "12 ms · 8 tokens · 666.7 tokens/s · no visible text (only whitespace or special tokens)"
    )
    shown = app.Answer(text="Chest pain.", latency_ms=12.0, new_tokens=3, tokens_per_second=250)
    assert shown.stats() == "12 ms · 3 tokens · 250.0 tokens/s"
