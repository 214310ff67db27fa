"""LoRA (PEFT `LoraConfig`), with Axolotl's keys; DoRA and QLoRA build on it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import UserError

from .base import FineTuningMethod, linear_module_names
from .bnb import bitsandbytes_config, kbit_ready

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from peft import LoraConfig
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe

DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora"}


def target_modules(recipe: Recipe, model: PreTrainedModel) -> list[str] | str:
    """What PEFT's ``target_modules`` gets, as Axolotl builds it: `lora_target_modules` (a
    list of names, or one regular expression PEFT full-matches against module names) plus,
    with `lora_target_linear`, every linear layer; neither: the attention projections, or
    nothing when `lora_target_parameters` names what trains.

    Example (usage, not run as a doctest: it needs a model)::

        target_modules(recipe, model)  # e.g. 'model.layers.1.self_attn.(q|v)_proj'
    """
    named = recipe.lora_target_modules
    linear = linear_module_names(model) if recipe.lora_target_linear else []
    if isinstance(named, str):
        check_regex_matches(named, model)
        if not linear:
            return named
        # PEFT reads a list as names, so the regex and the linear names become one regex
        return f"(?:{named})|(?:.*\\.)?(?:{'|'.join(map(re.escape, linear))})"
    if named or linear:
        return sorted({*(named or []), *linear})
    if recipe.lora_target_parameters:
        return []
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    defaults = [name for name in DEFAULT_TARGETS if name in present]
    return defaults or linear_module_names(model)


def check_regex_matches(pattern: str, model: PreTrainedModel) -> None:
    """A `lora_target_modules` regex that matches no module is one line with sample names
    (PEFT's own error lists no module names)."""
    names = [name for name, _ in model.named_modules() if name]
    if any(re.fullmatch(pattern, name) for name in names):
        return
    linear = [name for name in names if name.rsplit(".", 1)[-1] in linear_module_names(model)]
    raise UserError(
        f"lora_target_modules: {pattern!r} matches no module of this model (the whole name "
        f"must match); its module names look like {', '.join(linear[:3])}"
    )


def target_parameters(recipe: Recipe, model: PreTrainedModel) -> list[str] | None:
    """`lora_target_parameters` (PEFT ``target_parameters``), checked against the model's
    parameter names as PEFT matches them (the whole name or a dotted suffix)."""
    wanted = recipe.lora_target_parameters
    if not wanted:
        return None
    names = [name for name, _ in model.named_parameters()]
    missing = [t for t in wanted if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        experts = [n for n in names if ".experts." in n][:2] or names[:2]
        raise UserError(
            f"lora_target_parameters: {', '.join(missing)} names no parameter of this model; "
            f"its parameter names look like {', '.join(experts)}"
        )
    return list(wanted)


class LoraMethod(FineTuningMethod):
    """Low-rank adapters on the chosen linear layers (Hu et al., 2021), over a base loaded
    quantized when the recipe asks (`load_in_4bit`, `load_in_8bit`, `bnb_config_kwargs`)."""

    name = "lora"
    use_dora = False
    llama_cpp_adapter = True

    def quantization_config(self, recipe: Recipe, compute_dtype: torch.dtype) -> Any | None:
        return bitsandbytes_config(recipe, compute_dtype)

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        return super().prepare(kbit_ready(model), recipe)

    def start_from(
        self, model: PreTrainedModel, recipe: Recipe, adapter_dir: Path
    ) -> torch.nn.Module:
        return super().start_from(kbit_ready(model), recipe, adapter_dir)

    def peft_config(self, recipe: Recipe, model: PreTrainedModel) -> LoraConfig:
        from peft import LoraConfig

        return LoraConfig(
            task_type="CAUSAL_LM",
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules=target_modules(recipe, model),
            target_parameters=target_parameters(recipe, model),
            modules_to_save=recipe.lora_modules_to_save,
            use_dora=self.use_dora or recipe.peft_use_dora,
            use_rslora=recipe.peft_use_rslora,
            init_lora_weights=_INIT[recipe.lora_init],
        )
