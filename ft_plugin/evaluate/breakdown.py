"""Intervals for the report and the ``--group-by`` breakdown, from each model's per-row
statistics (``ModelResult.statistics``; see :mod:`.intervals`).

In report.json::

    intervals.{target,baseline,delta}.METRIC = [low, high]      (95 %, paired bootstrap)
    distinguishable.METRIC = false   when the change's interval contains 0
    groups.GROUP = {rows, target, baseline, delta, intervals, distinguishable}
"""

from __future__ import annotations

from typing import Any

from .intervals import contains_zero, paired_bootstrap

__all__ = ["group_breakdown", "interval_summary"]


def _statistics(results: dict[str, Any], rows: list[int] | None = None) -> dict[str, Any]:
    out = {}
    for role, result in results.items():
        stats = result.statistics
        out[role] = {m: s.subset(rows) for m, s in stats.items()} if rows is not None else stats
    return out


def _summary(statistics: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]:
    intervals = paired_bootstrap(
        statistics["target"], statistics.get("baseline"), resamples=resamples, seed=seed
    )
    distinguishable = {m: not contains_zero(iv) for m, iv in intervals.get("delta", {}).items()}
    return {"intervals": intervals, "distinguishable": distinguishable}


def interval_summary(results: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]:
    """``{"intervals": …, "distinguishable": …}`` over every evaluated row (empty: no
    per-row metric, or ``resamples`` 0)."""
    if resamples <= 0 or not results["target"].statistics:
        return {"intervals": {}, "distinguishable": {}}
    return _summary(_statistics(results), resamples, seed)


def _values(statistics: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {role: {m: round(s.value(), 6) for m, s in stats.items()} for role, stats in statistics.items()}  # fmt: skip


def group_breakdown(
    groups: dict[str, list[int]], results: dict[str, Any], resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Every per-row metric of every group: its rows, values, change and intervals.

    The same seed serves each group, so a group's intervals do not depend on the others.
    Latency, memory and cost are not per row and are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, rows in groups.items():
        statistics = _statistics(results, rows)
        values = _values(statistics)
        entry: dict[str, Any] = {"rows": len(rows), **values}
        if "baseline" in values:
            entry["delta"] = {
                m: round(v - values["baseline"][m], 6)
                for m, v in values["target"].items()
                if m in values["baseline"]
            }
        if resamples > 0 and statistics["target"]:
            entry.update(_summary(statistics, resamples, seed))
        out[name] = entry
    return out
