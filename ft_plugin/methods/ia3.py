"""IA3: learned rescaling vectors on keys, values and the MLP input (Liu et al., 2022)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import FineTuningMethod

if TYPE_CHECKING:
    from peft import IA3Config
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


class IA3Method(FineTuningMethod):
    """Three vectors per layer: the smallest adapter PEFT offers."""

    name = "ia3"

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
