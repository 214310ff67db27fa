"""The Space in a real browser: Debian's chromium driven by Playwright (no browser download).

Compare a prompt, go to Rate, rate the blind pair, and check ratings.jsonl got the line.
Skipped when /usr/bin/chromium (apt-get install chromium) or the playwright package
(pip install playwright, the Python package only) is missing, except under CI (``CI`` set
to true), where `make test` installs both: there a missing browser fails the run instead
of letting it pass without the browser test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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

from test_space import PROMPT, build_tiny_space_run, serve, small_limits  # noqa: E402

from ft_plugin.space import SpaceState  # noqa: E402


def test_compare_then_rate_in_the_browser(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run = build_tiny_space_run(tmp_path_factory.mktemp("browserrun"))
    state = SpaceState.load([str(run)], data_dir=tmp_path / "data", limits=small_limits())
    server = serve(state)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1100})
                page.goto(server.url)

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
                browser.close()
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
