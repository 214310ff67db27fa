"""What a person reads: the terminal table of `ft-plugin eval` and report.md.

Both show each change with its 95 % bootstrap interval; a change whose interval
contains 0 reads "not distinguishable" instead of "better"/"worse".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .predictions import showcase, showcase_score

__all__ = ["LOWER_IS_BETTER", "markdown", "rows_line", "terminal_table"]

# Metrics where a lower value is better (the change column says "better"/"worse" by this).
LOWER_IS_BETTER = ("perplexity", "answer_perplexity", "latency_ms_p50", "latency_ms_p95",
                   "peak_memory_mb", "weights_size_mb", "cost_per_1k_requests",
                   "unparseable_rate")  # fmt: skip
NOT_DISTINGUISHABLE = "not distinguishable"
TEXT_NOTE = (
    "ROUGE is the mean of the per-row F-measures in predictions.jsonl; BLEU and chrF are "
    "corpus scores (n-gram counts pooled over the rows), not the mean of the per-row "
    "sentence scores."
)


def rows_line(data: dict[str, Any]) -> str:
    """How many rows were evaluated out of how many were given, and how they were chosen.

    Example:
        >>> rows_line({"rows": 200, "rows_given": 800, "sampled": True})
        'evaluated 200 of 800 rows (seeded random sample; --max-samples 0 for all)'
        >>> rows_line({"rows": 6})
        'evaluated 6 of 6 rows'
    """
    given = data.get("rows_given", data["rows"])
    line = f"evaluated {data['rows']} of {given} rows"
    return line + (
        " (seeded random sample; --max-samples 0 for all)" if data.get("sampled") else ""
    )


def _cell(value: Any, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _span(interval: Any, signed: bool = False) -> str:
    if not interval or interval[0] is None:
        return ""
    return f"[{_cell(interval[0], signed)}, {_cell(interval[1], signed)}]"


def _verdict(name: str, change: Any, distinguishable: bool | None = None) -> str:
    if distinguishable is False:
        return " " + NOT_DISTINGUISHABLE
    if not isinstance(change, int | float) or change == 0:
        return ""
    if name == "tokens_per_second":
        return " faster" if change > 0 else " slower"
    better = change < 0 if name in LOWER_IS_BETTER else change > 0
    return " better" if better else " worse"


def terminal_table(report: dict[str, Any]) -> str:
    """The comparison a person reads at the end of `ft-plugin eval`: one row per metric,
    each change with its 95 % interval.

    Example:
        >>> print(terminal_table({"models": {"target": {"perplexity": 10.0}, "baseline": {"perplexity": 15.5}},
        ...                       "delta": {"perplexity": -5.5}, "data": {"rows": 6},
        ...                       "intervals": {"delta": {"perplexity": [-7.1, -3.9]}},
        ...                       "distinguishable": {"perplexity": True}}))
        metric      base  tuned                    change
        perplexity  15.5     10  -5.5 [-7.1, -3.9] better
        evaluated 6 of 6 rows
    """
    models = report["models"]
    target, baseline = models["target"], models.get("baseline")
    deltas = report.get("intervals", {}).get("delta", {})
    names = [k for k, v in target.items() if isinstance(v, int | float)]
    alone = report.get("intervals", {}).get("target", {}) if baseline is None else {}
    header = ["metric", *(["base"] if baseline else []), "tuned", *(["change"] if baseline else [])]
    header += ["95% interval"] if alone else []
    rows = [header]
    for name in names:
        row = [name]
        if baseline is not None:
            row.append(_cell(baseline.get(name)))
        row.append(_cell(target[name]))
        if alone:
            row.append(_span(alone.get(name)))
        if baseline is not None:
            change, span = report["delta"].get(name), _span(deltas.get(name), signed=True)
            verdict = _verdict(name, change, report.get("distinguishable", {}).get(name))
            row.append(_cell(change, signed=True) + (f" {span}" if span else "") + verdict)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]  # fmt: skip
    return "\n".join([*lines, rows_line(report["data"])])


def _metric_table(report: dict[str, Any], names: list[str], roles: list[str]) -> list[str]:
    models, intervals = report["models"], report.get("intervals", {})
    header = ["metric", *roles] + (
        ["Δ (tuned − base)", "Δ 95% interval"] if "baseline" in roles else []
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [
            f"{_cell(models[r].get(name))} {_span(intervals.get(r, {}).get(name))}".strip()
            for r in roles
        ]
        if "baseline" in roles:
            cells.append(_cell(report["delta"].get(name), signed=True))
            span = _span(intervals.get("delta", {}).get(name), signed=True)
            if span and report.get("distinguishable", {}).get(name) is False:
                span += " " + NOT_DISTINGUISHABLE
            cells.append(span)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines  # fmt: skip


def _group_table(report: dict[str, Any]) -> list[str]:
    groups = report.get("groups") or {}
    if not groups:
        return []
    paired = "baseline" in next(iter(groups.values()))
    header = ["group", "rows", "metric", *(["base"] if paired else []), "tuned"]
    header += ["Δ", "Δ 95% interval"] if paired else []
    lines = ["", f"## By group (`{report['data'].get('group_by')}`)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    for name, entry in groups.items():
        intervals = entry.get("intervals", {})
        for metric, value in entry.get("target", {}).items():
            tuned = f"{_cell(value)} {_span(intervals.get('target', {}).get(metric))}".strip()
            cells = [_escape(name), str(entry["rows"]), metric]
            if paired:
                span = _span(intervals.get("delta", {}).get(metric), signed=True)
                if span and entry.get("distinguishable", {}).get(metric) is False:
                    span += " " + NOT_DISTINGUISHABLE
                delta = _cell(entry.get("delta", {}).get(metric), signed=True)
                cells += [_cell(entry["baseline"].get(metric)), tuned, delta, span]
            else:
                cells.append(tuned)
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _escape(text: Any, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _answers(report: dict[str, Any], predictions: list[dict[str, Any]]) -> list[str]:
    seed = report.get("settings", {}).get("seed", 0)
    shown, key = showcase(predictions, seed), showcase_score(predictions)
    if not shown:
        return []
    base = "base_scores" in predictions[0]
    order = f"the change in {key} (tuned − base)" if base else f"the tuned {key}"
    lines = ["", "## Answers side by side", "",
             f"By {order}: the best, the worst and a few random rows (seed {seed}); "
             f"all {len(predictions)} rows are in predictions.jsonl.", "",
             "| shown | id | prompt | reference |" + (" base |" if base else "") + f" tuned | {key} |",
             "|---|---|---|---|" + ("---|" if base else "") + "---|---|"]  # fmt: skip
    for why, row in shown:
        tuned = row["tuned_scores"][key]
        score = f"{row['base_scores'][key]:.3g} → {tuned:.3g}" if base else f"{tuned:.3g}"
        cells = [why, str(row["id"]), _escape(row["prompt"]), _escape(row["reference"])]
        cells += [_escape(row.get("base_answer", ""))] if base else []
        cells += [_escape(row.get("tuned_answer", "")), score]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(
    report: dict[str, Any], plots: list[str], predictions: list[dict[str, Any]] | None = None
) -> str:
    """report.md: the metric table with intervals, the groups, a few answers, the plots."""
    models = report["models"]
    roles = [r for r in ("baseline", "target") if r in models]
    names = list(dict.fromkeys(k for r in roles for k in models[r]))
    data, settings = report["data"], report.get("settings", {})
    lines = ["# Evaluation", "", f"- target: `{settings.get('target')}`",
             f"- data: {data['source']} (template {data['template'] or 'none'})", f"- {rows_line(data)}"]  # fmt: skip
    if report.get("intervals"):
        lines.append(f"- intervals: 95% paired bootstrap over the rows ({settings.get('bootstrap')} resamples, "
                     f"seed {settings.get('seed')}); a change whose interval contains 0 is "
                     f"*{NOT_DISTINGUISHABLE}* from no change")  # fmt: skip
    lines += ["", *_metric_table(report, names, roles)]
    if any(n in names for n in ("bleu", "chrf", "rouge1", "rouge2", "rougeL")):
        lines += ["", TEXT_NOTE]
    lines += _group_table(report) + _answers(report, predictions or [])
    if report.get("human"):
        human = json.dumps(report["human"], indent=2, ensure_ascii=False)
        lines += ["", "## Human ratings", "", f"```json\n{human}\n```"]
    lines += ["", *[f"![{Path(p).stem}]({p})" for p in plots]]
    return "\n".join(lines) + "\n"
