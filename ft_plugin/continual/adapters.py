"""Parameter isolation: one adapter per task on the same base, and a router between them.

A recipe with `adapters:` trains each task adapter from the base (not chained) into
``RUN_DIR/NAME/`` (PEFT's layout for named adapters), then fits the TF-IDF + logistic
regression router on each adapter's training prompts into ``RUN_DIR/router/``.
``metrics.json`` holds each adapter's metrics and the router's held-out accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ft_plugin.config import LoadedRecipe
from ft_plugin.engine import RunResult, run
from ft_plugin.rundir import RunDir

from .runs import prepare_run


def task_recipe(loaded: LoadedRecipe, index: int) -> LoadedRecipe:
    recipe = loaded.recipe.for_stage(index, "adapters")
    name = loaded.recipe.adapters[index].name
    return LoadedRecipe(recipe, f"{loaded.name}-{name}", loaded.source, loaded.located)


def _prompts(data: Any) -> list[str]:
    return [row["prompt"][-1]["content"] for row in data.train if "prompt" in row]


def train_task_adapters(
    loaded: LoadedRecipe,
    output_dir: str | None,
    resume: bool,
    callbacks: list[Any] | None,
) -> RunResult:
    """Train every task adapter, then the router; returns a RunResult for the whole run."""
    from ft_plugin.continual.router import AdapterRouter

    top = RunDir.for_recipe(loaded, output_dir)
    top.check_reuse(loaded.to_yaml(), False)
    per_adapter: dict[str, Any] = {}
    prompts: dict[str, list[str]] = {}
    for index, entry in enumerate(loaded.recipe.adapters):
        prepared = prepare_run(task_recipe(loaded, index), str(top.task(entry.name).path),
                           "auto" if resume else False, callbacks)  # fmt: skip
        top.write_recipe(loaded)
        prompts[entry.name] = _prompts(prepared.data)
        per_adapter[entry.name] = run(prepared).metrics
    router = AdapterRouter()
    report = router.fit(prompts, seed=loaded.recipe.seed)
    router.save(top.router)
    metrics = {"adapters": per_adapter, "router": report.to_dict()}
    top.write_metrics(metrics)
    return RunResult(top.path, metrics)


def adapter_names(run_dir: Path) -> list[str]:
    """Named adapters in a run directory (sub-folders that are adapter run directories)."""
    return RunDir(run_dir).task_names()


def load_task_adapters(run_dir: Path) -> tuple[Any, Any, Any]:
    """The base with every task adapter loaded by name, its tokenizer, and the router (or None)."""
    import torch

    from ft_plugin import models, registry
    from ft_plugin.continual.router import AdapterRouter

    top = RunDir(run_dir)
    names = top.task_names()
    recipe = top.task(names[0]).load_recipe().recipe
    method = registry.load_method(recipe.adapter)
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    model = models.load_model(recipe, base, dtype=torch.float32)
    for name in names:
        model = method.load_adapter(model, run_dir / name, adapter_name=name)
    router = AdapterRouter.load(top.router) if top.router.is_dir() else None
    return model.eval(), models.load_tokenizer(recipe, base), router
