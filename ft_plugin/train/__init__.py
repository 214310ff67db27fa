"""The train workflow: ``train(recipe)`` trains one run, progressive stages or task
adapters; ``command.py`` is ``ft-plugin train`` and ``python -m ft_plugin.train`` (train,
print the summary, push when the recipe names a Hub repo).

The single run is ``ft_plugin.engine``'s; ``ft_plugin.continual`` runs stages, task
adapters and EWC on it. This package only chooses between them, and is the one way into
training from above (the command line, benchmarks); the Space trains through the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ft_plugin.config import LoadedRecipe
    from ft_plugin.engine import RunResult

__all__ = ["train"]


def train(
    loaded: LoadedRecipe,
    output_dir: str | None = None,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> RunResult:
    """Train ``loaded`` into its run directory and return the metrics.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        result = train(load_recipe("medical-lora", {"max_steps": 2}), "runs/doc")
        result.metrics["steps"]  # 2
    """
    # Imported here: `ft-plugin --help` builds the train command's parser without torch.
    from ft_plugin.continual import adapters, stages
    from ft_plugin.continual.runs import prepare_run
    from ft_plugin.engine import run

    if loaded.recipe.stages:
        return stages.train_stages(loaded, output_dir, resume, callbacks)
    if loaded.recipe.adapters:
        return adapters.train_task_adapters(loaded, output_dir, resume, callbacks)
    return run(prepare_run(loaded, output_dir, resume, callbacks))
