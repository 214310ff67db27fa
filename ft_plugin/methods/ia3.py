"""IA3: learned rescaling vectors on keys, values and the MLP input (Liu et al., 2022)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import FineTuningMethod
from .bnb import bitsandbytes_config, kbit_ready

if TYPE_CHECKING:
    import torch
    from peft import IA3Config
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


class IA3Method(FineTuningMethod):
    """Three vectors per layer: the smallest adapter PEFT offers."""

    name = "ia3"

    def quantization_config(self, recipe: Recipe, compute_dtype: torch.dtype) -> Any | None:
        return bitsandbytes_config(recipe, compute_dtype)  # PEFT's IA3 has 4- and 8-bit layers

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        return super().prepare(kbit_ready(model), recipe)

    def peft_config(self, recipe: Recipe, model: PreTrainedModel) -> IA3Config:
        from peft import IA3Config

        targets = recipe.ia3_target_modules or ["k_proj", "v_proj", "down_proj"]
        feedforward = recipe.ia3_feedforward_modules
        if feedforward is None:
            feedforward = [name for name in targets if name in ("down_proj", "fc2", "w2")]
        return IA3Config(
            task_type="CAUSAL_LM",
            target_modules=targets,
            feedforward_modules=feedforward,
            modules_to_save=recipe.lora_modules_to_save,
        )
