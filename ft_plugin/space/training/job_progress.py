"""A training job's live numbers and messages, read from its run directory's
``progress.jsonl`` lines and its ``train.log``: loss series, the latest speed, the time
left, the log's last lines and the line that says why a child failed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TAIL_BYTES = 64 * 1024  # the end of a log that its last lines are read from
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def last_error_line(log: Path) -> str:
    """The line of a child's log that says why it failed: ft-plugin's ``error: …`` line,
    else the last exception line, else the last line."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "the training process ended without output"
    lines = [_ANSI.sub("", part).strip() for line in text.splitlines() for part in line.split("\r")]
    lines = [line for line in lines if line]
    for pick in (
        lambda s: s.startswith("error:"),
        lambda s: re.match(r"^\w+(Error|Exception)\b", s),
    ):
        found = [line for line in lines if pick(line)]
        if found:
            return found[-1]
    return lines[-1] if lines else "the training process ended without output"


def series(progress: list[dict[str, Any]], key: str) -> list[list[float]]:
    """``[[step, value], …]`` of one logged value, the last value per step (a resumed run
    logs its steps again from the checkpoint)."""
    by_step = {p["step"]: p[key] for p in progress if key in p and "step" in p}
    return [[step, by_step[step]] for step in sorted(by_step)]


def latest(progress: list[dict[str, Any]], key: str) -> float | None:
    """The last logged value of ``key``, or None."""
    return next((p[key] for p in reversed(progress) if key in p), None)


def eta_seconds(progress: list[dict[str, Any]], state: str | None) -> float | None:
    """Seconds left at the pace of the current attempt (a resumed run restarts its clock)."""
    if state != "running" or not progress or not progress[-1].get("max_steps"):
        return None
    attempt = [progress[-1]]
    for line in reversed(progress[:-1]):
        if line.get("seconds", 0) > attempt[0].get("seconds", 0):
            break
        attempt.insert(0, line)
    first, last = attempt[0], attempt[-1]
    steps = last["step"] - first["step"] if len(attempt) > 1 else last["step"]
    seconds = last["seconds"] - first["seconds"] if len(attempt) > 1 else last["seconds"]
    if steps <= 0:
        return None
    return round(seconds / steps * max(0, last["max_steps"] - last["step"]), 1)


def log_tail(log: Path, lines: int) -> str:
    """The log's last ``lines`` non-blank lines, as a terminal shows them (progress bars
    at their last redraw, colours removed)."""
    if lines <= 0 or not log.is_file():
        return ""
    with log.open("rb") as handle:  # the end only: a status read stays cheap on long runs
        handle.seek(max(0, log.stat().st_size - TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    parts = [_ANSI.sub("", line.split("\r")[-1]).rstrip() for line in text.splitlines()]
    return "\n".join([part for part in parts if part.strip()][-lines:])
