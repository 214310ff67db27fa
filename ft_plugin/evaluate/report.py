"""Evaluation reports: `report.json`, `report.md` and PNG plots, written atomically."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ft_plugin.rundir import PREDICTIONS, REPORT
from ft_plugin.utils.plots import new_figure, save_png

from .tables import markdown, terminal_table

__all__ = ["add_human_ratings", "markdown", "plot_comparison", "plot_groups",
           "plot_training_curves", "terminal_table", "write_eval_report"]  # fmt: skip


def plot_training_curves(trainer_state: Path, path: Path) -> Path | None:
    """Train and eval loss against the step, from a run's `trainer_state.json`."""
    history = json.loads(trainer_state.read_text()).get("log_history", [])
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if not train and not evals:
        return None
    figure, axes = new_figure()
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss", color="tab:blue")
    if evals:
        axes.plot(*zip(*evals, strict=True), label="eval loss", color="tab:orange", marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title("Training curves")
    axes.legend()
    return save_png(figure, path)


QUALITY = ("accuracy", "macro_f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL")


def _error_bars(values: list[float], intervals: list[Any]) -> list[list[float]] | None:
    """matplotlib's ``yerr`` (below, above) from [low, high] intervals; 0 where there is none."""
    if not any(intervals):
        return None
    below = [max(0.0, v - iv[0]) if iv and iv[0] is not None else 0.0 for v, iv in zip(values, intervals, strict=True)]  # fmt: skip
    above = [max(0.0, iv[1] - v) if iv and iv[1] is not None else 0.0 for v, iv in zip(values, intervals, strict=True)]  # fmt: skip
    return [below, above]


def plot_comparison(
    models: dict[str, dict[str, Any]], path: Path, intervals: dict[str, Any] | None = None
) -> Path | None:
    """Side-by-side bars of the quality metrics (baseline vs target), with their 95 %
    bootstrap intervals as error bars when given."""
    names = [m for m in QUALITY if all(isinstance(r.get(m), int | float) for r in models.values())]
    if not names or len(models) < 2:
        return None
    figure, axes = new_figure(max(5, 1.2 * len(names) + 2))
    width = 0.8 / len(models)
    for offset, (role, metrics) in enumerate(sorted(models.items())):
        positions = [i + offset * width for i in range(len(names))]
        values = [metrics[m] for m in names]
        spans = [(intervals or {}).get(role, {}).get(m) for m in names]
        axes.bar(positions, values, width, label=role, yerr=_error_bars(values, spans), capsize=3)
    axes.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(names))], names)
    axes.set_title("Baseline vs tuned" + (" (95% intervals)" if intervals else ""))
    axes.legend()
    return save_png(figure, path)


def plot_groups(groups: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """One metric (the first quality metric, else perplexity) per group: bars for each
    model with 95 % intervals as error bars."""
    first = next(iter(groups.values()), {})
    candidates = [*QUALITY, "perplexity"]
    metric = next((m for m in candidates if m in first.get("target", {})), None)
    if metric is None:
        return None
    names, roles = list(groups), [r for r in ("baseline", "target") if r in first]
    figure, axes = new_figure(max(5, 0.9 * len(names) * len(roles) + 2))
    width = 0.8 / len(roles)
    for offset, role in enumerate(roles):
        values = [groups[g][role][metric] for g in names]
        spans = [groups[g].get("intervals", {}).get(role, {}).get(metric) for g in names]
        positions = [i + offset * width for i in range(len(names))]
        axes.bar(positions, values, width, label=role, yerr=_error_bars(values, spans), capsize=3)
    labels = [f"{g}\n({groups[g]['rows']} rows)" for g in names]
    axes.set_xticks([i + width * (len(roles) - 1) / 2 for i in range(len(names))], labels)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} by group (95% intervals)")
    axes.legend()
    return save_png(figure, path)


def write_eval_report(report: dict[str, Any], output: Path, *, results: dict[str, Any], labels: list[str] | None,
                      trainer_state: Path | None, predictions: list[dict[str, Any]] | None = None) -> Path:  # fmt: skip
    """Write report.json, report.md, predictions.jsonl (when there are answers or labels)
    and plots into ``output`` (replaced as a whole, atomically)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        plots: list[str] = []
        for role, result in results.items():
            scores = result.details.get("classification")
            if scores is not None and labels:
                from .classification import plot_confusion_matrix

                plot_confusion_matrix(
                    scores, labels, staging / f"confusion_{role}.png", f"Confusion matrix ({role})"
                )
                plots.append(f"confusion_{role}.png")
        if (
            trainer_state is not None
            and trainer_state.is_file()
            and plot_training_curves(trainer_state, staging / "training_curves.png")
        ):
            plots.append("training_curves.png")
        if plot_comparison(report["models"], staging / "comparison.png", report.get("intervals")):
            plots.append("comparison.png")
        if report.get("groups") and plot_groups(report["groups"], staging / "groups.png"):
            plots.append("groups.png")
        if predictions:
            from .predictions import write_predictions

            write_predictions(predictions, staging / PREDICTIONS)
        (staging / REPORT).write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (staging / "report.md").write_text(markdown(report, plots, predictions), encoding="utf-8")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def add_human_ratings(folder: Path, human: dict[str, Any]) -> Path:
    """Merge aggregated human ratings into an existing report (JSON and Markdown)."""
    from ft_plugin.errors import UserError
    from ft_plugin.utils.io import write_text_atomic

    path = folder / REPORT
    if not path.is_file():
        raise UserError(f"{path}: no evaluation report to add ratings to; run ft-plugin eval first")
    report = json.loads(path.read_text(encoding="utf-8"))
    report["human"] = human
    plots = [p.name for p in sorted(folder.glob("*.png"))]
    answers = folder / PREDICTIONS
    predictions = (
        [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines() if line]
        if answers.is_file()
        else None
    )
    write_text_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(folder / "report.md", markdown(report, plots, predictions))
    return path
