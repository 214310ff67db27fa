"""Progressive (multi-stage) training: stage k starts from stage k−1's adapter.

Each stage trains into ``RUN_DIR/stages/NAME/`` (a complete run directory of its own);
the last stage's weights are copied to the top of ``RUN_DIR`` and ``metrics.json``
holds the final metrics plus ``stages: {NAME: metrics}``. ``--resume`` skips finished
stages and continues the unfinished one from its latest checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ft_plugin.config import LoadedRecipe
from ft_plugin.io import write_text_atomic


def stage_recipe(loaded: LoadedRecipe, index: int, previous: str | None) -> LoadedRecipe:
    """Stage ``index`` as a recipe of its own, starting from ``previous`` when given."""
    recipe = loaded.recipe.for_stage(index)
    if previous is not None:
        recipe = recipe.model_copy(update={"lora_model_dir": previous})
    name = loaded.recipe.stages[index].name
    return LoadedRecipe(recipe, f"{loaded.name}-{name}", loaded.source, loaded.located)


def _finished(stage_dir: Path, loaded: LoadedRecipe) -> dict[str, Any] | None:
    from ft_plugin.train import _identity

    metrics, recipe = stage_dir / "metrics.json", stage_dir / "recipe.yaml"
    if (
        metrics.is_file()
        and recipe.is_file()
        and _identity(recipe.read_text()) == _identity(loaded.to_yaml())
    ):
        return json.loads(metrics.read_text())
    return None


def train_stages(
    loaded: LoadedRecipe, output_dir: str | None, resume: bool, callbacks: list[Any] | None
) -> Any:
    """Run every stage in order; returns the final RunResult with per-stage metrics."""
    from ft_plugin.train import (
        RunResult,
        check_run_dir,
        prepare_run,
        resolve_run_dir,
        run,
    )

    run_dir = resolve_run_dir(loaded, output_dir)
    check_run_dir(run_dir, loaded.to_yaml(), False)  # refuses another recipe's run directory
    previous = loaded.recipe.lora_model_dir
    per_stage: dict[str, dict[str, Any]] = {}
    for index, stage in enumerate(loaded.recipe.stages):
        stage_loaded = stage_recipe(loaded, index, previous)
        stage_dir = run_dir / "stages" / stage.name
        done = _finished(stage_dir, stage_loaded) if resume else None
        if done is None:
            prepared = prepare_run(
                stage_loaded, str(stage_dir), "auto" if resume else False, callbacks
            )
            if index == 0:
                write_text_atomic(run_dir / "recipe.yaml", loaded.to_yaml())
            done = run(prepared).metrics
        per_stage[stage.name] = done
        previous = str(stage_dir)
    last = Path(previous)
    for item in last.iterdir():
        if item.is_file() and item.name not in ("recipe.yaml", "metrics.json"):
            shutil.copy2(item, run_dir / item.name)
    metrics = {**per_stage[loaded.recipe.stages[-1].name], "stages": per_stage}
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(run_dir / "recipe.yaml", loaded.to_yaml())
    return RunResult(run_dir, metrics)
