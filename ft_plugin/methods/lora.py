"""LoRA (PEFT `LoraConfig`), with Axolotl's keys; DoRA and QLoRA build on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import FineTuningMethod, linear_module_names

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe

DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora"}


def target_modules(recipe: Recipe, model: PreTrainedModel) -> list[str]:
    """`lora_target_modules`, or every linear layer with `lora_target_linear`, or attention."""
    if recipe.lora_target_modules:
        return list(recipe.lora_target_modules)
    if recipe.lora_target_linear:
        return linear_module_names(model)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    defaults = [name for name in DEFAULT_TARGETS if name in present]
    return defaults or linear_module_names(model)


class LoraMethod(FineTuningMethod):
    """Low-rank adapters on the chosen linear layers (Hu et al., 2021)."""

    name = "lora"
    use_dora = False

    def peft_config(self, recipe: Recipe, model: PreTrainedModel) -> LoraConfig:
        from peft import LoraConfig

        return LoraConfig(
            task_type="CAUSAL_LM",
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules=target_modules(recipe, model),
            modules_to_save=recipe.lora_modules_to_save,
            use_dora=self.use_dora or recipe.peft_use_dora,
            use_rslora=recipe.peft_use_rslora,
            init_lora_weights=_INIT[recipe.lora_init],
        )
