"""Progressive (multi-stage) training: stage k starts from stage k−1's adapter.

Each stage trains into ``RUN_DIR/stages/NAME/`` (a complete run directory of its own);
the last stage's weights are copied to the top of ``RUN_DIR`` and ``metrics.json``
holds the final metrics plus ``stages: {NAME: metrics}``. ``--resume`` skips finished
stages and continues the unfinished one from its latest checkpoint.
"""

from __future__ import annotations

import shutil
from typing import Any

from ft_plugin import rundir
from ft_plugin.config import LoadedRecipe
from ft_plugin.engine import RunResult, run
from ft_plugin.rundir import RunDir

from .runs import prepare_run


def stage_recipe(loaded: LoadedRecipe, index: int, previous: str | None) -> LoadedRecipe:
    """Stage ``index`` as a recipe of its own, starting from ``previous`` when given."""
    recipe = loaded.recipe.for_stage(index)
    if previous is not None:
        recipe = recipe.model_copy(update={"lora_model_dir": previous})
    name = loaded.recipe.stages[index].name
    return LoadedRecipe(recipe, f"{loaded.name}-{name}", loaded.source, loaded.located)


def train_stages(
    loaded: LoadedRecipe,
    output_dir: str | None,
    resume: bool,
    callbacks: list[Any] | None,
) -> RunResult:
    """Run every stage in order (each with its EWC penalty, when it has one); returns the
    final RunResult with per-stage metrics."""
    top = RunDir.for_recipe(loaded, output_dir)
    top.check_reuse(loaded.to_yaml(), False)  # refuses another recipe's run directory
    previous = loaded.recipe.lora_model_dir
    per_stage: dict[str, dict[str, Any]] = {}
    for index, stage in enumerate(loaded.recipe.stages):
        stage_loaded = stage_recipe(loaded, index, previous)
        stage_dir = top.stage(stage.name)
        done = stage_dir.finished_metrics(stage_loaded) if resume else None
        if done is None:
            prepared = prepare_run(stage_loaded, str(stage_dir.path), "auto" if resume else False,
                               callbacks)  # fmt: skip
            if index == 0:
                top.write_recipe(loaded)
            done = run(prepared).metrics
        per_stage[stage.name] = done
        previous = str(stage_dir.path)
    for item in RunDir(previous).path.iterdir():
        if item.is_file() and item.name not in (rundir.RECIPE, rundir.METRICS):
            shutil.copy2(item, top.file(item.name))
    metrics = {**per_stage[loaded.recipe.stages[-1].name], "stages": per_stage}
    top.write_metrics(metrics)
    top.write_recipe(loaded)
    return RunResult(top.path, metrics)
