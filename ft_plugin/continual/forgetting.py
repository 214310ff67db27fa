"""The continual-learning matrix: average accuracy, backward/forward transfer, forgetting.

``R[k][i]`` is the metric on task ``i`` after training stage ``k``; rows are the stages in
order, columns the tasks in the same order, and task ``k`` is trained at stage ``k`` (so
``R`` is square, ``T × T``). ``baseline[i]`` is the metric of the untrained base model on
task ``i``. Entries above the diagonal (``k < i``: task ``i`` not trained yet) may be
``nan`` when they were not evaluated; the diagonal and everything below it must be finite.

Definitions (Lopez-Paz & Ranzato, 2017, "Gradient Episodic Memory for Continual
Learning", NeurIPS, §5; forgetting from Chaudhry et al., 2018, "Riemannian Walk for
Incremental Learning", ECCV, §4), with 0-based indices and ``T`` tasks:

* ``average_accuracy`` (GEM's ACC) ``= (1/T) Σ_i R[T-1][i]`` — the mean of the last row;
* ``bwt`` (GEM's BWT) ``= 1/(T-1) Σ_{i<T-1} (R[T-1][i] − R[i][i])`` — how training on the
  later tasks changed the earlier ones (negative: forgetting);
* ``fwt`` (GEM's FWT) ``= 1/(T-1) Σ_{i>0} (R[i-1][i] − baseline[i])`` — how much the earlier
  tasks helped task ``i`` before it was trained (only with a ``baseline``);
* ``forgetting`` (Chaudhry's average forgetting)
  ``= 1/(T-1) Σ_{i<T-1} (max_{k<T-1} R[k][i] − R[T-1][i])`` — the drop from the best value
  a task ever had to its final value (``≥ 0`` whenever the best is on or below the diagonal).

``bwt``, ``fwt`` and ``forgetting`` are ``None`` when ``T = 1`` (nothing to transfer to).

Sign convention for ``higher_is_better=False`` (perplexity, loss): ``bwt``, ``fwt`` and
``forgetting`` are computed on ``−R`` and ``−baseline``, so their signs always mean the same
thing — positive ``bwt``/``fwt`` is an improvement (perplexity went *down*), positive
``forgetting`` is a loss (the final perplexity is *above* the best one). In perplexity units:
``bwt = mean(R[i][i] − R[T-1][i])``, ``fwt = mean(baseline[i] − R[i-1][i])``,
``forgetting = mean(R[T-1][i] − min_{k<T-1} R[k][i])``. ``average_accuracy`` is never
negated: it is the mean final metric in its own units (the mean final perplexity).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _check_matrix(R: list[list[float]]) -> list[list[float]]:
    """A validated float copy of a square continual-learning matrix."""
    if not isinstance(R, list | tuple) or not R:
        raise ValueError("R must be a non-empty list of rows (one row per stage)")
    rows: list[list[float]] = []
    for k, row in enumerate(R):
        if not isinstance(row, list | tuple):
            raise ValueError(f"R[{k}] is not a row (list of floats): {row!r}")
        rows.append([float(value) for value in row])
    T = len(rows)
    lengths = [len(row) for row in rows]
    if len(set(lengths)) > 1:
        raise ValueError(f"R is ragged: its rows have lengths {lengths}")
    if lengths[0] != T:
        raise ValueError(
            f"R must be square (stage k trains task k): got {T} stage(s) × {lengths[0]} task(s)"
        )
    for k, row in enumerate(rows):
        for i, value in enumerate(row):
            if math.isinf(value) or (math.isnan(value) and i <= k):
                raise ValueError(
                    f"R[{k}][{i}] = {value}: entries on or below the diagonal must be finite "
                    "(only not-yet-trained tasks, above the diagonal, may be nan)"
                )
    return rows


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def forgetting_metrics(
    R: list[list[float]],
    baseline: list[float] | None = None,
    *,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """ACC, BWT, FWT (GEM, Lopez-Paz & Ranzato 2017) and forgetting (Chaudhry et al. 2018).

    See the module docstring for the exact formulas and the sign convention used when
    ``higher_is_better=False``. Returns ``average_accuracy``, ``bwt``, ``fwt`` (``None``
    without a baseline, or when a needed ``R[i-1][i]`` is nan), ``forgetting``, the
    per-task terms ``bwt_per_task``, ``fwt_per_task`` and ``forgetting_per_task`` (tasks
    ``0..T-2`` for bwt/forgetting, ``1..T-1`` for fwt), ``n_tasks`` and ``higher_is_better``.
    Raises ``ValueError`` for an empty, ragged or non-square ``R`` or a baseline of the
    wrong length.

    Example:
        >>> m = forgetting_metrics([[0.9, 0.2], [0.7, 0.8]], baseline=[0.1, 0.1])
        >>> round(m["average_accuracy"], 3), round(m["bwt"], 3), round(m["fwt"], 3)
        (0.75, -0.2, 0.1)
        >>> round(m["forgetting"], 3)
        0.2
    """
    rows = _check_matrix(R)
    T = len(rows)
    sign = 1.0 if higher_is_better else -1.0
    base: list[float] | None = None
    if baseline is not None:
        base = [float(value) for value in baseline]
        if len(base) != T:
            raise ValueError(f"baseline has {len(base)} value(s) for {T} task(s)")
        if not all(math.isfinite(value) for value in base):
            raise ValueError(f"baseline values must be finite, got {base}")

    last = rows[T - 1]
    bwt_terms = [sign * (last[i] - rows[i][i]) for i in range(T - 1)]
    forgetting_terms = [
        max(sign * rows[k][i] for k in range(T - 1) if not math.isnan(rows[k][i])) - sign * last[i]
        for i in range(T - 1)
    ]
    fwt_terms: list[float] | None = None
    if base is not None and not any(math.isnan(rows[i - 1][i]) for i in range(1, T)):
        fwt_terms = [sign * (rows[i - 1][i] - base[i]) for i in range(1, T)]
    return {
        "average_accuracy": sum(last) / T,
        "bwt": _mean(bwt_terms),
        "fwt": _mean(fwt_terms) if fwt_terms is not None else None,
        "forgetting": _mean(forgetting_terms),
        "bwt_per_task": bwt_terms,
        "fwt_per_task": fwt_terms,
        "forgetting_per_task": forgetting_terms,
        "n_tasks": T,
        "higher_is_better": higher_is_better,
    }


def plot_forgetting_matrix(
    R: list[list[float]],
    stage_names: list[str],
    task_names: list[str],
    path: str | Path,
    metric_name: str,
    *,
    higher_is_better: bool = True,
) -> Path:
    """Write ``R`` as a PNG heat map (stages down, tasks across) with the values in the cells.

    The colour map is reversed when ``higher_is_better=False`` so that better is always
    the same colour; nan cells (tasks not evaluated yet) are left blank. Uses matplotlib's
    Agg canvas directly (no pyplot). Raises ``ValueError`` for a bad ``R`` or names that do
    not match its shape.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        plot_forgetting_matrix([[0.9, 0.2], [0.7, 0.8]], ["after law", "after med"],
                               ["law", "med"], "forgetting.png", "accuracy")  # PosixPath('forgetting.png')
    """
    import numpy as np

    rows = _check_matrix(R)
    T = len(rows)
    if len(stage_names) != T or len(task_names) != T:
        raise ValueError(
            f"R is {T}×{T} but got {len(stage_names)} stage name(s) and "
            f"{len(task_names)} task name(s)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.array(rows, dtype=float)
    finite = values[np.isfinite(values)]
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        low, high = low - 0.5, high + 0.5

    from ft_plugin.utils.plots import font_family, new_figure, save_png

    family = font_family()
    size = max(4.0, 0.9 * T + 2.5)
    figure, axes = new_figure(size + 1.0, size)
    cmap = "viridis" if higher_is_better else "viridis_r"
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high)
    colorbar = figure.colorbar(image, ax=axes)
    colorbar.set_label(metric_name, fontfamily=family)
    axes.set_xticks(range(T), task_names, rotation=30, ha="right", fontfamily=family)
    axes.set_yticks(range(T), stage_names, fontfamily=family)
    axes.set_xlabel("evaluated on task")
    axes.set_ylabel("after training stage")
    axes.set_title(f"{metric_name} per stage and task", fontfamily=family)
    middle = (low + high) / 2
    for k in range(T):
        for i in range(T):
            value = values[k, i]
            if not math.isfinite(value):
                continue
            dark_cell = (value < middle) == higher_is_better  # viridis is dark at its low end
            axes.text(
                i,
                k,
                f"{value:.3g}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark_cell else "black",
                fontweight="bold" if i == k else "normal",
            )
    return save_png(figure, path)
