"""What the server accepts from a site: the checks a reply passes before it is averaged.

A site is a peer, not a trusted party: it reports its own ``num-examples`` (its weight
in FedAvg) and sends arrays nobody saw it make. Every training reply is checked here,
as pure functions on numpy arrays, and a reply that fails is left out of the round's
average with its reason written into the round's record:

- the arrays: exactly the keys the round expects (none extra, none missing), each with
  the shape and dtype the server sent, every value finite, and the update (reply minus
  the global weights sent) no longer than ``max_update_norm`` in L2 norm;
- ``num-examples``: a finite count of at least 1, *clamped* to ``max_examples`` (the
  rows the server planned for one site's round), so that no site weighs more than an
  honest one could; the claim is kept in the record beside the weight used.

The default norm bound follows Adam's step size: one optimizer step moves each weight by
at most about the learning rate (exactly lr on the first step, at most
(1-β1)/√(1-β2) ≈ 3.2·lr for the default betas), so an honest update is shorter than
lr · steps · √(parameters); :data:`NORM_MARGIN` times that is the default bound.

Example:
    >>> import numpy as np
    >>> sent = {"a": np.zeros((2, 2), np.float32)}
    >>> update_norm({"a": np.full((2, 2), 0.5, np.float32)}, sent, max_norm=10.0)
    1.0
    >>> example_weight(10**12, bound=8)
    (8, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Default max_update_norm = NORM_MARGIN · lr · local_steps · √(parameters sent): above
# Adam's worst case (≈3.2); honest updates measured at 0.27-0.30 of lr·steps·√n (embedded
# SmolLM2-135M, medical-lora, 10 steps) and 0.45-0.68 (tests' tiny model, 2 steps).
NORM_MARGIN = 4.0
TRAIN_METRICS = ("num-examples", "train_loss")  # all a train reply's MetricRecord may carry


class ReplyRefused(ValueError):
    """A site's reply the server leaves out of the average (the reason is one line)."""


@dataclass(frozen=True)
class Bounds:
    """What one round accepts from one site."""

    max_examples: int
    max_update_norm: float


def round_bounds(recipe: Any, learning_rate: float, expected: Mapping[str, Any]) -> Bounds:
    """One round's bounds: ``federated.max_examples_per_round`` or the rows planned for
    a site's round (micro_batch_size × gradient_accumulation_steps × local_steps), and
    ``federated.max_update_norm`` or :func:`default_update_norm` over the ``expected``
    arrays at this round's learning rate."""
    settings = recipe.federated
    planned = recipe.micro_batch_size * recipe.gradient_accumulation_steps * settings.local_steps
    parameters = int(sum(np.prod(value.shape) for value in expected.values()))
    norm = settings.max_update_norm or default_update_norm(
        learning_rate, settings.local_steps, parameters
    )
    return Bounds(max_examples=settings.max_examples_per_round or planned, max_update_norm=norm)


def default_update_norm(learning_rate: float, local_steps: int, parameters: int) -> float:
    """``NORM_MARGIN · lr · local_steps · √parameters`` (see the module's docstring).

    Example:
        >>> round(default_update_norm(2e-4, 10, 921_600), 2)
        7.68
    """
    return NORM_MARGIN * learning_rate * local_steps * math.sqrt(max(1, parameters))


def update_norm(
    update: Mapping[str, np.ndarray], sent: Mapping[str, np.ndarray], max_norm: float
) -> float:
    """The L2 norm of ``update - sent`` over every key, once the update has exactly the
    keys, shapes and dtypes of ``sent`` and only finite values; :class:`ReplyRefused`
    naming the first problem otherwise, or when the norm is over ``max_norm``."""
    missing, extra = sorted(set(sent) - set(update)), sorted(set(update) - set(sent))
    if extra:
        raise ReplyRefused(f"unexpected key {extra[0]!r} ({len(extra)} extra)")
    if missing:
        raise ReplyRefused(f"missing key {missing[0]!r} ({len(missing)} missing)")
    total = 0.0
    for key, reference in sent.items():
        value = update[key]
        if value.shape != reference.shape:
            raise ReplyRefused(
                f"{key}: shape {tuple(value.shape)}, expected {tuple(reference.shape)}"
            )
        if value.dtype != reference.dtype:
            raise ReplyRefused(f"{key}: dtype {value.dtype}, expected {reference.dtype}")
        if not np.isfinite(value).all():
            raise ReplyRefused(f"{key}: NaN or infinite values")
        total += float(np.square(value.astype(np.float64) - reference).sum())
    norm = math.sqrt(total)
    if not norm <= max_norm:
        raise ReplyRefused(
            f"update norm {norm:.4g} is over federated.max_update_norm {max_norm:.4g}"
        )
    return norm


def _is_number(value: Any) -> bool:
    """A finite int or float (a bool is not a count)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def example_weight(claimed: Any, bound: int) -> tuple[int, bool]:
    """(the weight FedAvg uses, whether the claim was clamped to ``bound``);
    :class:`ReplyRefused` for a claim that is not a finite count of at least 1."""
    if not _is_number(claimed) or claimed < 1:
        raise ReplyRefused(f"num-examples {claimed!r} is not a count of at least 1")
    return (bound, True) if claimed > bound else (int(claimed), False)


def train_metrics(metrics: Mapping[str, Any]) -> float:
    """The site's training loss, once its metrics hold exactly :data:`TRAIN_METRICS` and
    the loss is finite (FedAvg averages every metric key, so one odd key would fail the
    whole round)."""
    extra = sorted(set(metrics) - set(TRAIN_METRICS))
    if extra or "train_loss" not in metrics:
        raise ReplyRefused(
            f"metrics must be exactly {', '.join(TRAIN_METRICS)}; got {', '.join(sorted(metrics))}"
        )
    loss = metrics["train_loss"]
    if not _is_number(loss):
        raise ReplyRefused(f"train_loss {loss!r} is not a finite number")
    return float(loss)


def evaluate_metrics(metrics: Mapping[str, Any]) -> tuple[int, float]:
    """(tokens scored, held-out loss) of an evaluation reply holding exactly those two,
    finite, the count not negative; :class:`ReplyRefused` otherwise."""
    if set(metrics) != {"num-examples", "eval_loss"}:
        raise ReplyRefused(
            f"evaluate metrics must be num-examples and eval_loss; got {', '.join(sorted(metrics))}"
        )
    count, loss = metrics["num-examples"], metrics["eval_loss"]
    for name, value in (("num-examples", count), ("eval_loss", loss)):
        if not _is_number(value):
            raise ReplyRefused(f"{name} {value!r} is not a finite number")
    if count < 0:
        raise ReplyRefused(f"num-examples {count!r} is negative")
    return int(count), float(loss)


@dataclass(frozen=True)
class Accepted:
    """A reply that passed: the arrays in the server's key order, and what it weighs."""

    arrays: dict[str, np.ndarray]
    weight: int
    claimed: Any
    clamped: bool
    train_loss: float
    norm: float


def screen(
    arrays: Mapping[str, np.ndarray],
    metrics: Mapping[str, Any],
    sent: Mapping[str, np.ndarray],
    bounds: Bounds,
) -> Accepted:
    """Every check of one training reply against the arrays the server ``sent`` (the
    keys this round expects back); :class:`ReplyRefused` with the first problem."""
    weight, clamped = example_weight(metrics.get("num-examples"), bounds.max_examples)
    loss = train_metrics(metrics)
    norm = update_norm(arrays, sent, bounds.max_update_norm)
    ordered = {key: arrays[key] for key in sent}  # Flower's DP clipping pairs arrays by position
    return Accepted(ordered, weight, metrics.get("num-examples"), clamped, loss, norm)
