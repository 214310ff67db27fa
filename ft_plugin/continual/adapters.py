"""Parameter isolation: one adapter per task on the same base, and a router between them.

A recipe with `adapters:` trains each task adapter from the base (not chained) into
``RUN_DIR/NAME/`` (PEFT's layout for named adapters), then fits the TF-IDF + logistic
regression router on each adapter's training prompts into ``RUN_DIR/router/``.
``metrics.json`` holds each adapter's metrics and the router's held-out accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ft_plugin.config import LoadedRecipe
from ft_plugin.io import write_text_atomic

ROUTER_DIR = "router"


def task_recipe(loaded: LoadedRecipe, index: int) -> LoadedRecipe:
    recipe = loaded.recipe.for_stage(index, "adapters")
    name = loaded.recipe.adapters[index].name
    return LoadedRecipe(recipe, f"{loaded.name}-{name}", loaded.source, loaded.located)


def _prompts(data: Any) -> list[str]:
    return [row["prompt"][-1]["content"] for row in data.train if "prompt" in row]


def train_task_adapters(
    loaded: LoadedRecipe, output_dir: str | None, resume: bool, callbacks: list[Any] | None
) -> Any:
    """Train every task adapter, then the router; returns a RunResult for the whole run."""
    from ft_plugin.continual.router import AdapterRouter
    from ft_plugin.train import (
        RunResult,
        check_run_dir,
        prepare_run,
        resolve_run_dir,
        run,
    )

    run_dir = resolve_run_dir(loaded, output_dir)
    check_run_dir(run_dir, loaded.to_yaml(), False)
    per_adapter: dict[str, Any] = {}
    prompts: dict[str, list[str]] = {}
    for index, entry in enumerate(loaded.recipe.adapters):
        prepared = prepare_run(
            task_recipe(loaded, index),
            str(run_dir / entry.name),
            "auto" if resume else False,
            callbacks,
        )
        write_text_atomic(run_dir / "recipe.yaml", loaded.to_yaml())
        prompts[entry.name] = _prompts(prepared.data)
        per_adapter[entry.name] = run(prepared).metrics
    router = AdapterRouter()
    report = router.fit(prompts, seed=loaded.recipe.seed)
    router.save(run_dir / ROUTER_DIR)
    metrics = {"adapters": per_adapter, "router": report.to_dict()}
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return RunResult(run_dir, metrics)


def adapter_names(run_dir: Path) -> list[str]:
    """Named adapters in a run directory (sub-folders with an adapter_config.json)."""
    return sorted(p.parent.name for p in run_dir.glob("*/adapter_config.json"))


def load_task_adapters(run_dir: Path) -> tuple[Any, Any, Any]:
    """The base with every task adapter loaded by name, its tokenizer, and the router (or None)."""
    import torch
    from peft import PeftModel

    from ft_plugin import models
    from ft_plugin.config import load_recipe
    from ft_plugin.continual.router import AdapterRouter

    names = adapter_names(run_dir)
    recipe = load_recipe(str(run_dir / names[0] / "recipe.yaml")).recipe
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    model = PeftModel.from_pretrained(
        models.load_model(recipe, base, dtype=torch.float32),
        str(run_dir / names[0]),
        adapter_name=names[0],
    )
    for name in names[1:]:
        model.load_adapter(str(run_dir / name), adapter_name=name)
    router = AdapterRouter.load(run_dir / ROUTER_DIR) if (run_dir / ROUTER_DIR).is_dir() else None
    return model.eval(), models.load_tokenizer(recipe, base), router
