"""The Space in a real browser: Debian's chromium driven by Playwright (no browser download).

Compare a prompt, go to Rate, rate the blind pair, and check ratings.jsonl got the line.
Skipped when /usr/bin/chromium (apt-get install chromium) or the playwright package
(pip install playwright, the Python package only) is missing, except under CI (``CI`` set
to true), where `make test` installs both: there a missing browser fails the run instead
of letting it pass without the browser test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        raise RuntimeError(f"CI=true: {reason}; `make test` must install it (make browser)")
    pytest.skip(reason, allow_module_level=True)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    _unavailable(
        "playwright is not installed (pip install playwright; the browser is Debian's chromium)"
    )
if not CHROMIUM.is_file():
    _unavailable(f"{CHROMIUM} is missing (apt-get install chromium) for the browser test")

from space_helpers import PROMPT, build_tiny_space_run, serve, small_limits  # noqa: E402

from ft_plugin.space import SpaceState  # noqa: E402
from ft_plugin.space.access import OWNER, Access  # noqa: E402


def test_compare_then_rate_in_the_browser(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run = build_tiny_space_run(tmp_path_factory.mktemp("browserrun"))
    state = SpaceState.load([str(run)], data_dir=tmp_path / "data", limits=small_limits())
    server = serve(state)
    try:
        with open_page(server.url, height=1100) as page:
            page.locator("#compare-prompt textarea").fill(PROMPT)
            page.locator("#compare-button").click()
            tuned = page.locator("#tuned-answer textarea")
            base = page.locator("#base-answer textarea")
            expect(tuned).not_to_have_value("", timeout=60_000)
            expect(base).not_to_have_value("")
            expect(page.locator("#tuned-stats")).to_contain_text("tokens/s")
            expect(page.locator("#base-stats")).to_contain_text(" ms")
            answers = {"tuned": tuned.input_value(), "base": base.input_value()}

            page.get_by_role("tab", name="Rate").click()
            expect(page.locator("#rate-answer-a textarea")).not_to_have_value("")
            expect(page.locator("#rate-prompt textarea")).to_have_value(PROMPT)
            shown = {
                slot: page.locator(f"#rate-answer-{slot} textarea").input_value()
                for slot in ("a", "b")
            }
            assert sorted(shown.values()) == sorted(answers.values())
            given = {"relevance_a": 4, "accuracy_a": 3, "readability_a": 5,
                     "relevance_b": 2, "accuracy_b": 1, "readability_b": 4}  # fmt: skip
            for name, score in given.items():
                criterion, slot = name.rsplit("_", 1)
                radio = page.locator(f"#rate-{criterion}-{slot}")
                radio.get_by_text(str(score), exact=True).click()
            page.locator("#rate-preference").get_by_text("B", exact=True).click()
            page.locator("#rate-button").click()
            expect(page.locator("#rate-status")).to_contain_text(
                "Rating saved (1 so far)", timeout=30_000
            )
            expect(page.locator("#rate-summary")).to_contain_text("1 rating(s) so far")
            # one rating per pair: the pair and the scores are cleared
            expect(page.locator("#rate-answer-a textarea")).to_have_value("")
            for name in [*given, "preference"]:
                radio = page.locator(f"#rate-{name.replace('_', '-')} label.selected")
                expect(radio).to_have_count(0)
            page.screenshot(path=str(tmp_path / "space-rate.png"), full_page=True)
    finally:
        server.client.close()
        server.demo.close()

    assert (tmp_path / "space-rate.png").stat().st_size > 0
    lines = (tmp_path / "data" / "ratings.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["prompt"] == PROMPT and record["source"] == "ui"
    assert {k: record[k] for k in given} == given
    assert record["preference"] == "b" and record["preferred"] == record["b"]
    assert sorted((record["a"], record["b"])) == ["base", "tuned"]
    assert record["answer_a"] == shown["a"] == answers[record["a"]]
    assert record["answer_b"] == shown["b"] == answers[record["b"]]
    assert record["settings"]["max_new_tokens"] == state.limits.default_new_tokens


@contextlib.contextmanager
def open_page(url: str, *, height: int) -> Iterator[Any]:
    """A page of Debian's chromium (headless, Playwright) at ``url``, closed after."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


def _shot(page, folder: Path, name: str) -> Path:  # noqa: ANN001
    path = folder / f"space-train-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _choose(page, elem_id: str, option: str) -> None:  # noqa: ANN001
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()
    expect(page.locator(f"#{elem_id} input")).to_have_value(option)


def _number(page, key: str, value: object) -> None:  # noqa: ANN001
    box = page.locator(f"#train-{key} input")
    box.fill(str(value))
    box.press("Tab")


def test_train_in_the_browser_stop_resume_then_compare(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A GB18030 CSV with its own column names: map, preview, clean, start, watch the loss,
    stop, resume, then the new run answers in Compare. Screenshots of each step are kept
    (in FT_PLUGIN_TEST_ARTIFACTS when set, else the test's folder)."""
    from space_helpers import write_gb18030_csv
    from tiny import save_tiny_model

    from ft_plugin.space import Limits

    model = save_tiny_model(tmp_path_factory.mktemp("browser-train") / "tiny")
    csv = write_gb18030_csv(tmp_path / "内科问答.csv")
    shots = Path(os.environ.get("FT_PLUGIN_TEST_ARTIFACTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    limits = Limits(max_train_steps=400, stop_grace_s=60, max_new_tokens=8, default_new_tokens=4)
    state = SpaceState.load([], data_dir=tmp_path / "data", limits=limits,
                            access=Access("local"), base_models=[str(model)])  # fmt: skip
    server = serve(state)
    try:
        with open_page(server.url, height=1400) as page:
            expect(page.locator("#train-status")).to_contain_text("No training yet")

            page.locator("#train-file input[type=file]").set_input_files(str(csv))
            info = page.locator("#train-data-info")
            expect(info).to_contain_text("40 rows, encoding gb18030", timeout=60_000)
            _choose(page, "train-map-instruction", "问")
            _choose(page, "train-map-output", "答")
            expect(page.locator("#train-base input")).to_have_value(str(model))  # the list
            for key, value in {"max_steps": 400, "sequence_len": 768, "val_set_size": 4,
                               "micro_batch_size": 2, "lora_r": 4}.items():  # fmt: skip
                _number(page, key, value)
            _shot(page, shots, "1-mapped")

            page.locator("#train-preview-button").click()
            expect(page.locator("#train-preview textarea")).to_have_value(
                re.compile("«.*»", re.S), timeout=60_000
            )
            page.locator("#train-clean-button").click()
            expect(page.locator("#train-clean-report")).to_contain_text(
                "40 rows in", timeout=60_000
            )
            _shot(page, shots, "2-cleaned")

            page.locator("#train-check").click()
            expect(page.locator("#train-estimate")).to_contain_text("trainable", timeout=60_000)
            expect(page.locator("#train-recipe")).to_contain_text("field_instruction")
            _shot(page, shots, "3-recipe")

            page.locator("#train-start").click()
            run_id_box = page.locator("#train-run-id textarea")
            expect(run_id_box).not_to_have_value("", timeout=30_000)
            run_id = run_id_box.input_value()
            expect(page.locator("#train-status")).to_contain_text("step", timeout=120_000)

            def points() -> int:
                return len(state.training.status(OWNER, run_id)["loss"])

            first = _wait(lambda: points() if points() >= 2 else 0)
            later = _wait(lambda: points() if points() > first else 0)
            assert later > first  # the loss curve grows while the page watches
            page.wait_for_timeout(2500)  # one redraw of the plot
            _shot(page, shots, "4-training")

            page.locator("#train-stop").click()
            expect(page.locator("#train-status")).to_contain_text("stopped", timeout=120_000)
            _shot(page, shots, "5-stopped")
            page.locator("#train-resume").click()
            expect(page.locator("#train-status")).to_contain_text("done", timeout=300_000)
            _shot(page, shots, "6-done")
            expect(page.locator("#train-history")).to_contain_text(run_id)
            page.locator("#train-serve").click()  # serving a run is the owner's choice
            expect(page.locator("#train-served")).to_contain_text(run_id, timeout=60_000)

            page.get_by_role("tab", name="Compare").click()
            page.locator("#compare-prompt textarea").fill("头痛怎么办？")
            page.locator("#compare-button").click()
            expect(page.locator("#tuned-answer textarea")).not_to_have_value("", timeout=60_000)
            _shot(page, shots, "7-compare")
    finally:
        state.close()
        server.client.close()
        server.demo.close()
    status = state.training.status(OWNER, run_id)
    assert status["state"] == "done" and status["metrics"]["steps"] == 400
    assert len(list(shots.glob("space-train-*.png"))) == 7


def _wait(condition, timeout: float = 180) -> int:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_the_owner_signs_in_with_hugging_face_to_train(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """On a Space with sign-in (Gradio's local stand-in, which signs in as the Hub user of
    the test server's token): a visitor sees how to sign in and no Train steps; after
    "Sign in with Hugging Face" the owner sees them, with their name."""
    from hub_server import run_hub_server
    from space_helpers import free_port

    from ft_plugin.space import build_blocks, launch_kwargs

    run = build_tiny_space_run(tmp_path_factory.mktemp("browser-sign-in"))
    access = Access("huggingface", frozenset({"test-user"}), mock_sign_in=True)
    state = SpaceState.load([str(run)], data_dir=tmp_path / "data", limits=small_limits(),
                            access=access)  # fmt: skip
    with run_hub_server() as hub, hub.patched_client():  # the stand-in reads whoami at start
        demo = build_blocks(state)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), quiet=True,
                                prevent_thread_lock=True, **launch_kwargs(state.limits, access))  # fmt: skip
    try:
        with open_page(url, height=1000) as page:
            page.get_by_role("tab", name="Train").click()
            gate = page.locator("#train-gate")
            expect(gate).to_contain_text("Sign in as the Space's owner to train")
            expect(page.locator("#train-start")).to_be_hidden()
            page.screenshot(path=str(tmp_path / "visitor.png"), full_page=True)
            page.locator("#sign-in").click()  # the stand-in signs in and comes back
            expect(page.locator("#sign-in")).to_contain_text("Logout (test-user)",
                                                             timeout=30_000)  # fmt: skip
            page.get_by_role("tab", name="Train").click()
            expect(gate).to_contain_text("Signed in as test-user", timeout=30_000)
            expect(page.locator("#train-start")).to_be_visible()
            page.screenshot(path=str(tmp_path / "owner.png"), full_page=True)
    finally:
        state.close()
        demo.close()
    assert (tmp_path / "visitor.png").stat().st_size > 0
