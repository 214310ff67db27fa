"""Class balancing for classification rows (``{"text": ..., "label": ...}``).

Labels are compared as strings (``1`` and ``"1"`` are the same class), so reports are
JSON-ready. Nothing here mutates its input: returned rows are shallow copies.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

Row = dict[str, Any]
Strategy = Literal["none", "downsample", "oversample"]

__all__ = ["BalanceReport", "Strategy", "balance_rows", "label_distribution"]

_STRATEGIES = ("none", "downsample", "oversample")


@dataclass
class BalanceReport:
    """Label counts before and after balancing, and how many rows were added or removed."""

    before: dict[str, int]
    after: dict[str, int]
    strategy: str
    target_ratio: float
    added: int = 0
    removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the report."""
        return asdict(self)


def _label(row: Row, label_field: str, index: int) -> str:
    if not isinstance(row, dict) or label_field not in row or row[label_field] is None:
        raise ValueError(f"row {index}: missing label field {label_field!r}")
    return str(row[label_field])


def _sorted_counts(counts: Counter[str]) -> dict[str, int]:
    return {label: counts[label] for label in sorted(counts)}


def label_distribution(rows: list[Row], label_field: str = "label") -> dict[str, int]:
    """Rows per label, sorted by label.

    Example:
        >>> label_distribution([{"label": "b"}, {"label": "a"}, {"label": "b"}], "label")
        {'a': 1, 'b': 2}
    """
    return _sorted_counts(Counter(_label(row, label_field, i) for i, row in enumerate(rows)))


def _ceil(value: float) -> int:
    # round first so that float noise (3 / 0.3 == 10.000000000000002) does not add a row
    return math.ceil(round(value, 9))


def _floor(value: float) -> int:
    return math.floor(round(value, 9))


def balance_rows(
    rows: list[Row],
    label_field: str = "label",
    *,
    strategy: Strategy,
    target_ratio: float = 1.0,
    seed: int = 0,
) -> tuple[list[Row], BalanceReport]:
    """Downsample or oversample classes so that ``smallest / largest >= target_ratio``.

    ``downsample`` keeps a seeded random subset of every class larger than
    ``floor(min_count / target_ratio)`` rows (original order kept). ``oversample`` appends
    random duplicates (drawn with replacement, marked ``"_augmented": "oversample"``) to
    every class smaller than ``ceil(max_count * target_ratio)`` rows, after the originals.
    ``none`` returns copies of the rows unchanged.

    Example:
        >>> rows = [{"label": "a"}] * 4 + [{"label": "b"}]
        >>> out, report = balance_rows(rows, "label", strategy="oversample", target_ratio=0.5)
        >>> report.after, report.added
        ({'a': 4, 'b': 2}, 1)
        >>> out, report = balance_rows(rows, "label", strategy="downsample")
        >>> report.after, report.removed
        ({'a': 1, 'b': 1}, 3)
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(_STRATEGIES)}, not {strategy!r}")
    if not (0 < target_ratio <= 1) or math.isnan(target_ratio):
        raise ValueError(f"target_ratio must be in (0, 1], not {target_ratio!r}")
    labels = [_label(row, label_field, i) for i, row in enumerate(rows)]
    before = _sorted_counts(Counter(labels))
    report = BalanceReport(before, dict(before), strategy, float(target_ratio))
    if strategy == "none" or len(before) < 2:
        return [dict(row) for row in rows], report

    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {label: [] for label in before}
    for index, label in enumerate(labels):
        by_label[label].append(index)

    if strategy == "downsample":
        # floor (not ceil) so that min / cap >= target_ratio always holds; equal when exact
        cap = _floor(min(before.values()) / target_ratio)
        keep: set[int] = set()
        for indices in by_label.values():
            keep.update(indices if len(indices) <= cap else rng.sample(indices, cap))
        out = [dict(row) for index, row in enumerate(rows) if index in keep]
        report.removed = len(rows) - len(out)
    else:
        floor_count = _ceil(max(before.values()) * target_ratio)
        out = [dict(row) for row in rows]
        for indices in by_label.values():
            for _ in range(max(0, floor_count - len(indices))):
                copy = dict(rows[rng.choice(indices)])
                copy["_augmented"] = "oversample"
                out.append(copy)
        report.added = len(out) - len(rows)

    report.after = label_distribution(out, label_field)
    return out, report
