"""Token lengths of rendered rows, and what `sequence_len` would keep most of them."""

from __future__ import annotations

import math
import statistics
from typing import Any


def keeping(ordered: list[int], share: float) -> int:
    """The smallest length that keeps ``share`` of the rows (``ordered`` ascending).

    Example:
        >>> keeping(list(range(1, 101)), 0.95)
        95
    """
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def length_stats(lengths: list[int], sequence_len: int) -> dict[str, Any]:
    """min/mean/p50/p95/max of token lengths, how many exceed `sequence_len`, and the
    `sequence_len` values that would keep 95% and 99% of the rows."""
    if not lengths:
        return {"rows": 0}
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "rows": len(ordered),
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 1),
        "p50": ordered[(len(ordered) - 1) // 2],
        "p95": p95,
        "max": ordered[-1],
        "over_sequence_len": sum(1 for n in ordered if n > sequence_len),
        "sequence_len": sequence_len,
        "sequence_len_keeping_95": keeping(ordered, 0.95),
        "sequence_len_keeping_99": keeping(ordered, 0.99),
    }


def length_advice(stats: dict[str, Any], where: str = "sequence_len") -> str | None:
    """One line for the terminal when rows would be dropped as longer than `sequence_len`.

    Example:
        >>> length_advice(length_stats([100] * 79 + [600] * 21, 512))
        '21 of 100 rows (21%) are longer than sequence_len 512 and are dropped in training; sequence_len 600 would keep 95% of the rows, 600 would keep 99%'
    """
    over = stats.get("over_sequence_len", 0)
    if not over:
        return None
    rows = stats["rows"]
    return (f"{over:,} of {rows:,} rows ({over / rows:.0%}) are longer than sequence_len "
            f"{stats['sequence_len']} and are dropped in training; {where} "
            f"{stats['sequence_len_keeping_95']} would keep 95% of the rows, "
            f"{stats['sequence_len_keeping_99']} would keep 99%")  # fmt: skip
