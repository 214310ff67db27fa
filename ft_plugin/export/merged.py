"""The ``merged`` export: a folder plain `transformers`, vLLM and TGI load as it is."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ft_plugin import registry
from ft_plugin.errors import UserError
from ft_plugin.merge import merge_run
from ft_plugin.rundir import MODEL_CONFIG, RunDir

from .stops import end_of_turn_tokens

# What a full / freeze run folder holds besides the tokenizer: the weights as trained.
_FULL_WEIGHTS = ("config.json", "generation_config.json", "model.safetensors",
                 "model-*.safetensors", "model.safetensors.index.json")  # fmt: skip


def write_merged(run_dir: Path, folder: Path) -> Any:
    """Write ``run_dir``'s model into ``folder`` (new) as full safetensors weights, with
    the run's tokenizer and chat template, and its end-of-turn tokens as the generation
    config's ``eos_token_id`` so that every server stops where the run stops. Returns the
    tokenizer.

    Example (usage, not run as a doctest: it needs a trained run)::

        write_merged(Path("runs/medical-lora"), Path("runs/medical-lora/export/merged"))
    """
    from ft_plugin import models

    recipe = RunDir(run_dir).load_recipe().recipe
    if registry.load_method(recipe.adapter).uses_peft:
        merge_run(run_dir, folder)  # refuses bottleneck / llama-adapter with the reason
    else:
        _copy_full_weights(run_dir, folder)
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    tokenizer = models.load_tokenizer(recipe, base, quiet=True)
    tokenizer.save_pretrained(folder)
    _write_generation_config(folder, tokenizer)
    return tokenizer


def _copy_full_weights(run_dir: Path, folder: Path) -> None:
    if not (run_dir / MODEL_CONFIG).is_file():
        raise UserError(f"{run_dir}: no trained weights ({MODEL_CONFIG}); did training finish?")
    folder.mkdir(parents=True, exist_ok=True)
    for pattern in _FULL_WEIGHTS:
        for path in run_dir.glob(pattern):
            shutil.copy2(path, folder / path.name)


def _write_generation_config(folder: Path, tokenizer: Any) -> None:
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(folder)
    except OSError:  # no generation_config.json: a fresh one
        config = GenerationConfig()
    stops = tokenizer.convert_tokens_to_ids(end_of_turn_tokens(tokenizer))
    config.eos_token_id = stops[0] if len(stops) == 1 else stops
    config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        config.bos_token_id = tokenizer.bos_token_id
    config.save_pretrained(folder)
