"""One run of a continual recipe: the engine's run with the recipe's EWC penalty.

EWC is continual learning's own business: the engine takes any ``penalty_for`` and
knows nothing of Fisher information, so the penalty is chosen here, once, for single
runs, stages and task adapters alike.
"""

from __future__ import annotations

from typing import Any

from ft_plugin.config import LoadedRecipe
from ft_plugin.engine import PreparedRun
from ft_plugin.engine import prepare_run as prepare_engine_run

from .fisher import ewc_penalty_for


def prepare_run(
    loaded: LoadedRecipe,
    output_dir: str | None = None,
    resume: bool | str = False,
    callbacks: list[Any] | None = None,
) -> PreparedRun:
    """The engine's ``prepare_run`` with the recipe's EWC penalty (``ewc:``), when it has one.

    Example (usage, not run as a doctest: it needs a model and data)::

        prepared = prepare_run(load_recipe("medical-lora", {"ewc.previous": "runs/a"}))
        run(prepared)  # the loss adds λ/2 · Σ F (θ − θ*)² for runs/a's parameters
    """
    penalty = ewc_penalty_for(loaded.recipe)
    return prepare_engine_run(loaded, output_dir, resume, callbacks, penalty)
