"""The statistics of blind human ratings (``human.py`` reads the sheets): mean scores with
t-intervals, preference shares and Krippendorff's alpha between raters."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import krippendorff
import numpy as np
from scipy import stats

MODELS = ("base", "tuned")
CRITERIA = ("relevance", "accuracy", "readability")
LEVELS = ("nominal", "ordinal", "interval", "ratio")


def krippendorff_alpha(
    units: Sequence[Sequence[float | None]], level: str = "ordinal"
) -> float | None:
    """Krippendorff's alpha of reliability data given as one list of values per unit.

    A unit holds the values the raters gave it (None or absent = not rated); units with
    fewer than two values are not pairable and are ignored. ``level`` is ``nominal``,
    ``ordinal``, ``interval`` or ``ratio``. Returns None when alpha is undefined (no
    pairable unit, or all values identical so there is no expected disagreement).

    Example (two raters, four items):
        >>> krippendorff_alpha([[1, 1], [2, 2], [3, 3], [4, 4]])
        1.0
        >>> round(krippendorff_alpha([[1, 2], [2, 2], [3, 3], [4, 3]], "interval"), 3)
        0.708
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: use one of {LEVELS}")
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [u for u in pairable if len(u) >= 2]
    values = sorted({v for u in pairable for v in u})
    if len(values) < 2:  # nothing pairable, or no variation: no expected disagreement
        return None
    index = {v: i for i, v in enumerate(values)}
    counts = np.zeros((len(pairable), len(values)))  # units x values: how many raters gave it
    for row, unit in enumerate(pairable):
        for value in unit:
            counts[row, index[value]] += 1
    return float(
        krippendorff.alpha(value_counts=counts, value_domain=values, level_of_measurement=level)
    )


@dataclass
class ScoreStats:
    """Mean rating (1-5) with its 95% t-interval ``ci95 = (low, high)`` and count ``n``.

    ``mean`` and ``ci95`` are None when nobody rated; with one rating ``ci95`` is
    ``(mean, mean)``.
    """

    mean: float | None
    ci95: tuple[float, float] | None
    n: int

    @classmethod
    def of(cls, values: list[int]) -> ScoreStats:
        """Summarise ratings: ``mean ± t(0.975, n-1) * stdev / sqrt(n)``.

        Example:
            >>> s = ScoreStats.of([4, 5]); s.mean, tuple(round(x, 2) for x in s.ci95)
            (4.5, (-1.85, 10.85))
        """
        n = len(values)
        if n == 0:
            return cls(None, None, 0)
        mean = sum(values) / n
        if n == 1:
            return cls(mean, (mean, mean), 1)
        half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(values) / math.sqrt(n)
        return cls(mean, (mean - half, mean + half), n)


@dataclass
class HumanReport:
    """Unblinded human ratings of the base and the tuned model.

    ``scores[model][criterion]`` (models ``base``, ``tuned``; criteria ``relevance``,
    ``accuracy``, ``readability``) is a :class:`ScoreStats` over every rating given, one
    per rater and item (treated as independent observations, so with several raters
    per item the interval is somewhat optimistic). ``preference`` holds the shares
    (0-1) of ``tuned``, ``base`` and ``tie`` among the ``preference_n`` preferences
    given (all 0.0 when none).
    ``agreement[criterion]`` is Krippendorff's alpha at ``agreement_level`` over the
    (item, model) units rated by two raters or more; it is empty when no unit was, and a
    value is None when alpha is undefined (every rating the same).
    """

    scores: dict[str, dict[str, ScoreStats]]
    preference: dict[str, float]
    preference_n: int
    raters: int
    rater_names: list[str]
    items: int
    agreement: dict[str, float | None] = field(default_factory=dict)
    agreement_level: str = "ordinal"

    def to_dict(self) -> dict[str, float | int | None]:
        """Flat map: ``<model>_<criterion>_{mean,ci95_low,ci95_high,n}``, ``preference_*``,
        ``raters``, ``items`` and ``alpha_<criterion>``."""
        out: dict[str, float | int | None] = {}
        for model, by_criterion in self.scores.items():
            for criterion, s in by_criterion.items():
                low, high = s.ci95 if s.ci95 else (None, None)
                out |= {f"{model}_{criterion}_mean": s.mean, f"{model}_{criterion}_ci95_low": low}
                out |= {f"{model}_{criterion}_ci95_high": high, f"{model}_{criterion}_n": s.n}
        out |= {f"preference_{k}": v for k, v in self.preference.items()}
        out |= {"preference_n": self.preference_n, "raters": self.raters, "items": self.items}
        out |= {f"alpha_{c}": a for c, a in self.agreement.items()}
        return out


def summarise(
    ratings: dict[tuple[str, str], dict[tuple[str, str], int]],
    preferences: list[str],
    seen: dict[tuple[str, str], str],
    level: str,
) -> HumanReport:
    """Build the report from ``ratings[(criterion, model)][(item, rater)] = score``."""
    scores = {
        model: {c: ScoreStats.of(list(ratings.get((c, model), {}).values())) for c in CRITERIA}
        for model in MODELS
    }
    names = sorted({rater for rater, _ in seen})
    agreement: dict[str, float | None] = {}
    for criterion in CRITERIA:
        units: dict[tuple[str, str], list[int]] = {}
        for model in MODELS:
            for (item, _), score in ratings.get((criterion, model), {}).items():
                units.setdefault((item, model), []).append(score)
        if any(len(values) >= 2 for values in units.values()):
            agreement[criterion] = krippendorff_alpha(list(units.values()), level)
    counts = {k: preferences.count(k) for k in ("tuned", "base", "tie")}
    return HumanReport(
        scores=scores,
        preference={k: c / len(preferences) if preferences else 0.0 for k, c in counts.items()},
        preference_n=len(preferences),
        raters=len(names),
        rater_names=names,
        items=len({item for _, item in seen}),
        agreement=agreement,
        agreement_level=level,
    )
