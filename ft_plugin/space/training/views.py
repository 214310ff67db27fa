"""What the Train tab shows, from a job's status (``TrainingJobs.status``), without Gradio.

Example:
    >>> status_markdown({"state": "running", "step": 3, "max_steps": 10, "eta_seconds": 70,
    ...                  "tokens_per_second": 812.4, "peak_memory_mb": 650, "run_id": "x"})
    '**running**: step 3 / 10 (30%), about 1 min 10 s left · 812 tokens/s · peak memory 650 MB'
"""

from __future__ import annotations

import time
from typing import Any

from ..redaction import redact
from .data import Upload


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def status_markdown(status: dict[str, Any] | None) -> str:
    """One line: state, step / max steps with ETA, tokens/s, memory (or the error)."""
    if not status:
        return "No training yet: choose the data and the method, then press **Start**."
    state = status["state"]
    if state == "queued":
        return f"**queued**: position {status.get('queue_position')} (one training at a time)"
    parts = [f"**{state}**"]
    step, total = status.get("step") or 0, status.get("max_steps")
    if total:
        parts[0] += f": step {step} / {total} ({100 * step / total:.0f}%)"
        if status.get("eta_seconds") is not None:
            parts[0] += f", about {_duration(status['eta_seconds'])} left"
    elif state == "running":
        parts[0] += ": loading the model and the data"
    if status.get("tokens_per_second"):
        parts.append(f"{status['tokens_per_second']:.0f} tokens/s")
    if status.get("peak_memory_mb"):
        parts.append(f"peak memory {status['peak_memory_mb']:.0f} MB")
    line = " · ".join(parts)
    if state == "failed" and status.get("error"):  # inert: it may quote an uploaded name
        line += f"\n\n❌ {redact(status['error'], markdown=True)}"
    if state == "stopping":
        line += "\n\nStopping: the current step ends, then a checkpoint is saved."
    if state == "stopped":
        line += "\n\nStopped with a checkpoint: **Resume** continues from it."
    if state == "done" and status.get("metrics"):
        line += (
            f"\n\n✅ {final_numbers(status['metrics'])}; **Serve** it to try it in Compare, "
            "Evaluate and Rate."
        )
    return line


def final_numbers(metrics: dict[str, Any]) -> str:
    """A finished run's headline numbers.

    Example:
        >>> final_numbers({"steps": 5, "train_loss": 1.23456, "eval_loss": 1.1, "eval_perplexity": 3.0})
        '5 steps, train loss 1.2346, eval loss 1.1000 (perplexity 3.00)'
    """
    text = f"{metrics.get('steps')} steps, train loss {metrics.get('train_loss', float('nan')):.4f}"
    if metrics.get("eval_loss") is not None:
        text += f", eval loss {metrics['eval_loss']:.4f}"
        if metrics.get("eval_perplexity") is not None:
            text += f" (perplexity {metrics['eval_perplexity']:.2f})"
    return text


def curve_frame(status: dict[str, Any] | None, series: tuple[str, ...]) -> Any:
    """A long-form table ``step, value, series`` of the given status series, for a plot."""
    import pandas as pd

    rows = [
        {"step": step, "value": value, "series": name.replace("_", " ")}
        for name in series
        for step, value in (status or {}).get(name, [])
    ]
    return pd.DataFrame(rows, columns=["step", "value", "series"])


def history_rows(history: list[dict[str, Any]]) -> list[list[Any]]:
    """``[run id, recipe, state, steps, train loss, eval loss, started]`` per job."""
    rows = []
    for job in history:
        metrics = job.get("metrics") or {}
        started = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(job["created"]))
            if job.get("created")
            else ""
        )
        rows.append([job["run_id"], job.get("recipe"), job["state"], metrics.get("steps", job.get("step")),
                     metrics.get("train_loss"), metrics.get("eval_loss"), started])  # fmt: skip
    return rows


def upload_markdown(upload: Upload) -> str:
    """What was read: rows, encoding and columns, and the mapping to check."""
    encoding = f", encoding {upload.encoding}" if upload.encoding else ""
    return (
        f"**{upload.shown}**: {upload.rows:,} rows{encoding}; columns: "
        + ", ".join(f"`{c}`" for c in upload.columns)
        + ". Check which column fills each field of the template below."
    )


def cleaning_summary(report: dict[str, Any]) -> str:
    """Rows in and out and why rows were dropped, above the full cleaning report."""
    dropped = report.get("dropped") or {}
    reasons = ", ".join(f"{reason} {count}" for reason, count in dropped.items()) or "none"
    pii = report.get("pii") or {}
    replaced = ", ".join(f"{kind} {count}" for kind, count in pii.items()) or "none"
    return (f"**{report.get('input_rows', 0):,} rows in, {report.get('output_rows', 0):,} out** "
            f"(dropped: {reasons}; PII replaced: {replaced})")  # fmt: skip
