"""Paired bootstrap intervals for corpus metrics and for the base-vs-tuned change.

Every quality metric of an evaluation is a function of per-row statistics summed over
the rows (a :class:`RowStatistic`):

* a mean (ROUGE, accuracy): statistics ``[x, 1]``, value ``Σx / Σ1``;
* perplexity: ``[nll, tokens]``, value ``exp(Σnll / Σtokens)``;
* BLEU and chrF: sacrebleu's per-row match counts, value sacrebleu's corpus score of
  their sum (exactly ``corpus_score`` on those rows, see ``text_metrics.PooledStats``);
* macro-F1: a one-hot confusion cell per row, value the F1 of the summed matrix.

A bootstrap resample draws ``n`` rows with replacement. With ``c[i]`` the number of
times row ``i`` was drawn, the resample's summed statistics are ``c @ S``, so a corpus
metric is recomputed per resample without touching the texts again. The resample is
*paired*: base and tuned use the same ``c``, so the interval of the change reflects
only how the two differ on the same rows. Draws come from ``numpy.random.default_rng
(seed)``, one ``integers(0, n, n)`` per resample, in order. Intervals are percentile
intervals (2.5 % and 97.5 % for 95 %).

Latency, memory and cost are not per-row quality scores and are not resampled.

Example:
    >>> tuned = {"rougeL": RowStatistic.mean([40.0, 55.0, 61.0, 70.0, 52.0])}
    >>> base = {"rougeL": RowStatistic.mean([35.0, 50.0, 60.0, 60.0, 50.0])}
    >>> iv = paired_bootstrap(tuned, base, resamples=1000, seed=0)
    >>> low, high = iv["delta"]["rougeL"]; 0 < low < 4.6 < high
    True
    >>> contains_zero(iv["delta"]["rougeL"])
    False
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RowStatistic", "contains_zero", "paired_bootstrap", "resample_counts"]

Reducer = Callable[[np.ndarray], np.ndarray]  # (resamples, k) sums -> (resamples,) values
_CHUNK = 256  # resamples per matrix product (bounds memory at 256 × rows)


def _ratio(sums: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums[:, 0] / sums[:, 1]


def _exp_ratio(sums: np.ndarray) -> np.ndarray:
    return np.exp(_ratio(sums))


@dataclass
class RowStatistic:
    """A corpus metric as ``reduce(Σ per-row statistics)``.

    Example:
        >>> round(RowStatistic.perplexity([(2.0, 2), (4.0, 2)]).value(), 4)  # exp(6 / 4)
        4.4817
    """

    stats: np.ndarray  # (rows, k)
    reduce: Reducer

    def value(self) -> float:
        return float(self.reduce(self.stats.sum(0)[None, :])[0])

    def subset(self, rows: Sequence[int]) -> RowStatistic:
        return RowStatistic(self.stats[np.asarray(rows, dtype=np.int64)], self.reduce)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """Values on resamples given as draw counts per row, shape (resamples, rows)."""
        return self.reduce(counts @ self.stats)

    @classmethod
    def mean(cls, values: Sequence[float]) -> RowStatistic:
        x = np.asarray(values, dtype=np.float64)
        return cls(np.column_stack([x, np.ones_like(x)]), _ratio)

    @classmethod
    def perplexity(cls, rows: Sequence[tuple[float, int]]) -> RowStatistic:
        return cls(np.asarray(rows, dtype=np.float64).reshape(-1, 2), _exp_ratio)

    @classmethod
    def pooled(cls, pooled: Any) -> RowStatistic:
        """sacrebleu counts (``text_metrics.PooledStats``): BLEU or chrF of the summed counts."""

        def reduce(sums: np.ndarray) -> np.ndarray:
            return np.array([pooled.score(row) for row in sums])

        return cls(pooled.counts.astype(np.float64), reduce)

    @classmethod
    def macro_f1(
        cls, truth: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]
    ) -> RowStatistic:
        """scikit-learn's ``f1_score(average="macro", labels=labels, zero_division=0)``;
        a prediction outside ``labels`` is wrong for every class (an extra column)."""
        k = len(labels)
        index = {label: i for i, label in enumerate(labels)}
        cells = [
            index[t] * (k + 1) + index.get(p, k) for t, p in zip(truth, predicted, strict=True)
        ]  # type: ignore[arg-type]
        stats = np.zeros((len(cells), k * (k + 1)))
        stats[np.arange(len(cells)), cells] = 1.0

        def reduce(sums: np.ndarray) -> np.ndarray:
            confusion = sums.reshape(-1, k, k + 1)
            tp = np.diagonal(confusion[:, :, :k], axis1=1, axis2=2)
            fn = confusion.sum(2) - tp
            fp = confusion[:, :, :k].sum(1) - tp
            with np.errstate(divide="ignore", invalid="ignore"):
                f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            return f1.mean(1)

        return cls(stats, reduce)


def resample_counts(rows: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Draw counts per row, ``(chunk, rows)`` at a time, ``resamples`` in all.

    Example:
        >>> [c.sum(1).tolist() for c in resample_counts(3, 2, seed=0)]
        [[3.0, 3.0]]
    """
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        counts = np.empty((size, rows))
        for r in range(size):
            counts[r] = np.bincount(rng.integers(0, rows, rows), minlength=rows)
        yield counts


def _interval(values: np.ndarray, confidence: float) -> list[float | None]:
    tail = 100 * (1 - confidence) / 2
    finite = values[np.isfinite(values)]
    if not finite.size:
        return [None, None]
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [round(float(low), 6), round(float(high), 6)]


def paired_bootstrap(
    target: dict[str, RowStatistic],
    baseline: dict[str, RowStatistic] | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, list[float | None]]]:
    """Percentile intervals: ``{"target": {m: [lo, hi]}, "baseline": …, "delta": …}``.

    ``delta`` is target minus baseline on the same resampled rows, for the metrics both
    have. All statistics must cover the same rows.
    """
    models = {"target": target, **({"baseline": baseline} if baseline is not None else {})}
    sizes = {len(s.stats) for m in models.values() for s in m.values()}
    if len(sizes) > 1:
        raise ValueError(f"statistics cover different numbers of rows: {sorted(sizes)}")
    if not sizes or resamples <= 0:
        return {}
    shared = [m for m in target if baseline is not None and m in baseline]
    draws: dict[str, dict[str, list[np.ndarray]]] = {
        role: {m: [] for m in s} for role, s in models.items()
    }
    for counts in resample_counts(sizes.pop(), resamples, seed):
        for role, statistics in models.items():
            for metric, statistic in statistics.items():
                draws[role][metric].append(statistic.resampled(counts))
    values = {role: {m: np.concatenate(v) for m, v in d.items()} for role, d in draws.items()}
    out = {role: {m: _interval(v, confidence) for m, v in d.items()} for role, d in values.items()}
    if baseline is not None:
        out["delta"] = {
            m: _interval(values["target"][m] - values["baseline"][m], confidence) for m in shared
        }
    return out


def contains_zero(interval: Sequence[float | None] | None) -> bool:
    """Whether a change's interval includes 0 (the change is not distinguishable from none).

    Example:
        >>> contains_zero([-0.4, 1.2]), contains_zero([0.1, 0.9]), contains_zero([0.0, 0.0])
        (True, False, True)
    """
    if not interval or interval[0] is None or interval[1] is None:
        return True
    return interval[0] <= 0 <= interval[1]
