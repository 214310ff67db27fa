"""Evaluation reports: `report.json`, `report.md` and PNG plots, written atomically."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ft_plugin.plots import new_figure, save_png
from ft_plugin.rundir import REPORT


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


def plot_comparison(models: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Side-by-side bars of the quality metrics (baseline vs target)."""
    quality = ("accuracy", "macro_f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL")
    names = [m for m in quality if all(isinstance(r.get(m), int | float) for r in models.values())]
    if not names or len(models) < 2:
        return None
    figure, axes = new_figure(max(5, 1.2 * len(names) + 2))
    width = 0.8 / len(models)
    for offset, (role, metrics) in enumerate(sorted(models.items())):
        positions = [i + offset * width for i in range(len(names))]
        axes.bar(positions, [metrics[m] for m in names], width, label=role)
    axes.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(names))], names)
    axes.set_title("Baseline vs tuned")
    axes.legend()
    return save_png(figure, path)


def markdown(report: dict[str, Any], plots: list[str]) -> str:
    models = report["models"]
    roles = [r for r in ("baseline", "target") if r in models]
    names = list(dict.fromkeys(k for r in roles for k in models[r]))
    data = report["data"]
    lines = ["# Evaluation", "", f"- target: `{report['settings']['target']}`",
             f"- data: {data['source']} ({data['rows']} rows, template {data['template'] or 'none'})", ""]  # fmt: skip
    header = ["metric", *roles] + (["Δ (tuned − base)"] if "baseline" in models else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [_cell(models[r].get(name)) for r in roles]
        if "baseline" in models:
            cells.append(_cell(report["delta"].get(name), signed=True))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if report.get("human"):
        lines += [
            "",
            "## Human ratings",
            "",
            f"```json\n{json.dumps(report['human'], indent=2)}\n```",
        ]
    lines += ["", *[f"![{Path(p).stem}]({p})" for p in plots]]
    return "\n".join(lines) + "\n"


# Metrics where a lower value is better (the change column says "better"/"worse" by this).
LOWER_IS_BETTER = ("perplexity", "latency_ms_p50", "latency_ms_p95", "peak_memory_mb",
                   "weights_size_mb", "cost_per_1k_requests", "unparseable_rate")  # fmt: skip


def terminal_table(report: dict[str, Any]) -> str:
    """The comparison a person reads at the end of `ft-plugin eval`: one row per metric.

    Example:
        >>> print(terminal_table({"models": {"target": {"perplexity": 10.0}, "baseline": {"perplexity": 15.5}},
        ...                       "delta": {"perplexity": -5.5}, "data": {"rows": 6}}))
        metric      base  tuned       change
        perplexity  15.5     10  -5.5 better
        (6 rows)
    """
    models = report["models"]
    target, baseline = models["target"], models.get("baseline")
    names = [k for k, v in target.items() if isinstance(v, int | float)]
    header = ["metric", *(["base"] if baseline else []), "tuned", *(["change"] if baseline else [])]
    rows = [header]
    for name in names:
        row = [name]
        if baseline is not None:
            row.append(_cell(baseline.get(name)))
        row.append(_cell(target[name]))
        if baseline is not None:
            change = report["delta"].get(name)
            row.append(_cell(change, signed=True) + _verdict(name, change))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]  # fmt: skip
    return "\n".join([*lines, f"({report['data']['rows']} rows)"])


def _verdict(name: str, change: Any) -> str:
    if not isinstance(change, int | float) or change == 0:
        return ""
    if name == "tokens_per_second":
        return " faster" if change > 0 else " slower"
    better = change < 0 if name in LOWER_IS_BETTER else change > 0
    return " better" if better else " worse"


def _cell(value: Any, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "–"
    text = f"{value:+.4g}" if signed else f"{value:.4g}"
    return text


def write_eval_report(report: dict[str, Any], output: Path, *, results: dict[str, Any], labels: list[str] | None,
                      trainer_state: Path | None) -> Path:  # fmt: skip
    """Write report.json, report.md and plots into ``output`` (replaced as a whole, atomically)."""
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
        if plot_comparison(report["models"], staging / "comparison.png"):
            plots.append("comparison.png")
        (staging / REPORT).write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (staging / "report.md").write_text(markdown(report, plots), encoding="utf-8")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def add_human_ratings(folder: Path, human: dict[str, Any]) -> Path:
    """Merge aggregated human ratings into an existing report (JSON and Markdown)."""
    from ft_plugin.errors import UserError
    from ft_plugin.io import write_text_atomic

    path = folder / REPORT
    if not path.is_file():
        raise UserError(f"{path}: no evaluation report to add ratings to; run ft-plugin eval first")
    report = json.loads(path.read_text(encoding="utf-8"))
    report["human"] = human
    plots = [p.name for p in sorted(folder.glob("*.png"))]
    write_text_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(folder / "report.md", markdown(report, plots))
    return path
