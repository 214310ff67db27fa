"""Computing and finding a run's Fisher information (`ft-plugin ewc fisher RUN_DIR`)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import torch

from .ewc import (
    FISHER_FILE,
    EwcPenalty,
    compute_fisher,
    load_fisher,
    save_fisher,
    trainable_parameters,
)


def _load_trainable_run(run_dir: Path) -> tuple[Any, Any, Any]:
    """The run's model with exactly its trained parameters trainable, its tokenizer and recipe."""
    from ft_plugin import models, registry
    from ft_plugin.rundir import RunDir

    loaded = RunDir(run_dir).load_recipe()
    if _in_hub_cache(run_dir):
        _refuse_code_from_a_hub_run(loaded.located)
    recipe = loaded.recipe
    method = registry.load_method(recipe.adapter)
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    tokenizer = models.load_tokenizer(recipe, base)
    model = method.load_trainable_run(run_dir, recipe, base)
    return model, tokenizer, recipe


def _refuse_code_from_a_hub_run(located: Any) -> None:
    """A run downloaded from the Hub (``ewc.previous: hf://…``) is someone else's recipe:
    computing its Fisher here must not run its model's code or fetch its URLs."""
    from ft_plugin.config.trust import CODE, NETWORK, remote_problems
    from ft_plugin.errors import UserError

    for found, origin, rule in remote_problems(
        located, is_remote=lambda origin: True, kinds=(CODE, NETWORK)
    ):
        key = ".".join(map(str, found.path))
        raise UserError(
            f"{origin.file}:{origin.line}: {key}: {rule.reason}; computing the Fisher of a run "
            "from the Hub may not: download the run, read its recipe.yaml, and set ewc.previous "
            "to the local folder"
        )


def fisher_for_run(
    run_dir: Path, *, samples: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Fisher and anchor weights of a run, on the first ``samples`` rows of its training data
    (a line on stderr first; a terminal also gets a bar of the rows done)."""
    from tqdm.auto import tqdm

    from ft_plugin.data import build_training_data
    from ft_plugin.data.preview import render_example

    print(
        f"ft-plugin: computing the Fisher of {run_dir} on {samples} rows (per-sample gradients)",
        file=sys.stderr,
        flush=True,
    )
    model, tokenizer, recipe = _load_trainable_run(run_dir)
    rows = list(build_training_data(recipe, tokenizer).train)[:samples]
    batches = []
    for example in rows:
        rendered = render_example(tokenizer, example, recipe.sequence_len, recipe.train_on_inputs)
        ids = torch.tensor([rendered.input_ids])
        labels = torch.tensor(
            [
                [
                    t if m else -100
                    for t, m in zip(rendered.input_ids, rendered.loss_mask, strict=True)
                ]
            ]
        )
        batches.append({"input_ids": ids, "labels": labels})
    shown = tqdm(batches, desc="Fisher information", unit="row", leave=False, disable=None)
    fisher = compute_fisher(model, shown)
    anchors = {name: p.detach().float().clone() for name, p in trainable_parameters(model).items()}
    return fisher, anchors


def write_fisher(run_dir: Path, *, samples: int) -> tuple[Path, int, float]:
    """Compute ``run_dir``'s Fisher and save it there: (file, tensor count, trace).

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        write_fisher(Path("runs/medical-lora"), samples=200)  # (…/fisher.safetensors, 60, 3.1e-05)
    """
    fisher, anchors = fisher_for_run(run_dir, samples=samples)
    path = save_fisher(run_dir, fisher, anchors)
    return path, len(fisher), sum(float(f.sum()) for f in fisher.values())


def ensure_fisher(run_dir: Path, *, samples: int) -> Path:
    """The folder holding ``run_dir``'s `fisher.safetensors`, computing it when missing.

    It is written next to the adapter when the run directory is writable, else (a Hub
    snapshot in the read-only cache) into ft-plugin's cache.
    """
    if (run_dir / FISHER_FILE).is_file():
        return run_dir
    from ft_plugin.models import cache_dir

    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]
    cached = cache_dir() / "ewc" / digest
    if (cached / FISHER_FILE).is_file():
        return cached
    fisher, anchors = fisher_for_run(run_dir, samples=samples)
    target = run_dir if os.access(run_dir, os.W_OK) and not _in_hub_cache(run_dir) else cached
    target.mkdir(parents=True, exist_ok=True)
    save_fisher(target, fisher, anchors)
    return target


def _in_hub_cache(folder: Path) -> bool:
    from huggingface_hub import constants

    return str(folder.resolve()).startswith(str(Path(constants.HF_HUB_CACHE).resolve()))


def ewc_penalty_for(recipe: Any) -> Any:
    """``model -> EwcPenalty`` protecting ``ewc.previous`` for the engine, or None without EWC.

    The previous run's Fisher is computed first when it is missing.
    """
    if not recipe.ewc:
        return None

    def build(model: Any) -> EwcPenalty:
        from ft_plugin.hub.refs import resolve_folder

        previous = resolve_folder(recipe.ewc.previous or recipe.lora_model_dir)
        fisher, anchors = load_fisher(ensure_fisher(previous, samples=recipe.ewc.fisher_samples))
        return EwcPenalty(model, fisher, anchors, recipe.ewc.lambda_)

    return build
