"""Train stage: ``train(recipe)`` runs a single run, progressive stages or task adapters.

The single-run engine is ``ft_plugin.engine``; ``ft_plugin.continual`` builds stages,
EWC and task adapters on it; this module chooses between them. ``ft-plugin train`` and
``accelerate launch -m ft_plugin.train`` (``__main__.py``) both end here.
"""

from __future__ import annotations

from typing import Any

from ft_plugin.config import LoadedRecipe
from ft_plugin.continual import adapters, stages
from ft_plugin.continual.fisher import ewc_penalty_for
from ft_plugin.engine import (
    PreparedRun,
    RunResult,
    build_sft_config,
    check_launch,
    choose_precision,
    is_main_process,
    launch_notes,
    run,
)
from ft_plugin.engine import prepare_run as prepare_single_run

__all__ = [
    "PreparedRun",
    "RunResult",
    "build_sft_config",
    "check_launch",
    "choose_precision",
    "is_main_process",
    "launch_notes",
    "prepare_run",
    "run",
    "train",
]


def prepare_run(
    loaded: LoadedRecipe,
    output_dir: str | None = None,
    resume: bool | str = False,
    callbacks: list[Any] | None = None,
) -> PreparedRun:
    """The engine's ``prepare_run`` with the recipe's EWC penalty, when it has one."""
    return prepare_single_run(loaded, output_dir, resume, callbacks, ewc_penalty_for(loaded.recipe))


def train(
    loaded: LoadedRecipe,
    output_dir: str | None = None,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> RunResult:
    """Train ``loaded`` into its run directory and return the metrics.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        result = train(load_recipe("medical-lora", ["max_steps=2"]), "runs/doc")
        result.metrics["steps"]  # 2
    """
    if loaded.recipe.stages:
        return stages.train_stages(loaded, output_dir, resume, callbacks, prepare=prepare_run)
    if loaded.recipe.adapters:
        return adapters.train_task_adapters(
            loaded, output_dir, resume, callbacks, prepare=prepare_run
        )
    return run(prepare_run(loaded, output_dir, resume, callbacks))
