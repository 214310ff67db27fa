"""Data reports: JSON for machines, Markdown for people, PNG plots for both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ft_plugin.utils.io import write_text_atomic
from ft_plugin.utils.plots import save_png


def _table(mapping: dict[str, Any], left: str, right: str) -> list[str]:
    lines = [f"| {left} | {right} |", "|---|---:|"]
    lines += [f"| {key} | {value} |" for key, value in mapping.items()]
    return lines


def markdown(report: dict[str, Any], plots: list[Path]) -> str:
    """A readable summary of a data report."""
    lines = [f"# Data report: {report['template']}", ""]
    lines += [f"- inputs: {', '.join(report['inputs'])}", f"- output: {report['output']}"]
    lines += [f"- rows: {report['input_rows']} in, {report['output_rows']} out", ""]
    for key, title in (
        ("dropped", "Dropped rows"),
        ("modified", "Modified rows"),
        ("pii", "PII replaced"),
    ):
        if report.get(key):
            lines += [f"## {title}", "", *_table(report[key], "reason", "rows"), ""]
    if report.get("labels"):
        lines += ["## Labels", "", *_table(report["labels"], "label", "rows"), ""]
    if report.get("balance"):
        lines += ["## Balancing", "", f"`{json.dumps(report['balance'])}`", ""]
    if report.get("augmentation"):
        lines += ["## Augmentation", "", f"`{json.dumps(report['augmentation'])}`", ""]
    if report.get("length_tokens"):
        lines += [
            "## Length in tokens",
            "",
            *_table(report["length_tokens"], "statistic", "value"),
            "",
        ]
    if report.get("topics"):
        lines += ["## Topics", "", "| cluster | size | top terms |", "|---:|---:|---|"]
        lines += [
            f"| {c['id']} | {c['size']} | {', '.join(c['top_terms'])} |"
            for c in report["topics"]["clusters"]
        ]
        lines.append("")
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def _bar_plot(values: dict[str, int], title: str, path: Path) -> Path:
    from ft_plugin.utils.plots import new_figure

    figure, axes = new_figure(6, 3.2)
    axes.bar(list(values), list(values.values()), color="tab:blue")
    axes.set_title(title)
    axes.set_ylabel("rows")
    return save_png(figure, path)


def _length_histogram(lengths: list[int], sequence_len: int, path: Path) -> Path:
    from ft_plugin.utils.plots import new_figure

    figure, axes = new_figure(6, 3.2)
    axes.hist(lengths, bins=min(40, max(5, len(set(lengths)))), color="tab:blue")
    axes.axvline(
        sequence_len, color="tab:red", linestyle="--", label=f"sequence_len {sequence_len}"
    )
    axes.set_title("Tokens per training example")
    axes.set_xlabel("tokens")
    axes.set_ylabel("rows")
    axes.legend()
    return save_png(figure, path)


def write_report(
    report: dict[str, Any],
    path: Path,
    *,
    topic_report: Any | None = None,
    lengths: list[int] | None = None,
) -> list[Path]:
    """Write ``report`` as JSON at ``path``, Markdown beside it, and PNG plots; returns all paths."""
    stem = path.name.removesuffix(".json")
    plots: list[Path] = []
    if lengths:
        sequence_len = report["length_tokens"]["sequence_len"]
        plots.append(
            _length_histogram(lengths, sequence_len, path.with_name(f"{stem}.lengths.png"))
        )
    if report.get("labels"):
        plots.append(
            _bar_plot(report["labels"], "Rows per label", path.with_name(f"{stem}.labels.png"))
        )
    if topic_report is not None:
        from .clustering import plot_topic_sizes

        plots.append(plot_topic_sizes(topic_report, path.with_name(f"{stem}.topics.png")))
    write_text_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    markdown_path = path.with_name(f"{stem}.md")
    write_text_atomic(markdown_path, markdown(report, plots))
    return [path, markdown_path, *plots]
