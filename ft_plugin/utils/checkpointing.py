"""Whether a run recomputes activations (gradient checkpointing): one rule for training
(``engine.sft_config``) and its memory estimate (``methods.estimate``), below both."""

from __future__ import annotations

from typing import Literal, Protocol

# Gradient checkpointing recomputes activations (~20-30% slower). TRL turns it on by
# default; we turn it on only where memory needs it: models of this size and up.
GRADIENT_CHECKPOINTING_MIN_PARAMS = 1_000_000_000


class CheckpointingKeys(Protocol):
    """The recipe key the rule reads (a ``Recipe`` has it)."""

    gradient_checkpointing: bool | Literal["auto", "offload", "offload_disk"]


def choose_gradient_checkpointing(recipe: CheckpointingKeys, total_params: int) -> bool:
    """True when the run recomputes activations: as the recipe says, or by size under `auto`.

    Example:
        >>> from types import SimpleNamespace
        >>> choose_gradient_checkpointing(SimpleNamespace(gradient_checkpointing="auto"), 135_000_000)
        False
    """
    if recipe.gradient_checkpointing == "auto":
        return total_params >= GRADIENT_CHECKPOINTING_MIN_PARAMS
    return bool(recipe.gradient_checkpointing)
