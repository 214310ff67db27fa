"""LLaMA-Adapter: zero-initialised adaption prompts in the top layers (PEFT `AdaptionPromptConfig`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import FineTuningMethod

if TYPE_CHECKING:
    from peft import AdaptionPromptConfig
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


class LlamaAdapterMethod(FineTuningMethod):
    """Learned prompt tokens attended to through a zero-init gate (Zhang et al., 2023)."""

    name = "llama-adapter"
    mergeable = False
    not_mergeable_reason = (
        "llama-adapter adds attention over learned prompts; no weight merge exists"
    )

    def peft_config(self, recipe: Recipe, model: PreTrainedModel) -> AdaptionPromptConfig:
        from peft import AdaptionPromptConfig

        layers = min(recipe.adapter_layers, model.config.num_hidden_layers)
        return AdaptionPromptConfig(
            task_type="CAUSAL_LM", adapter_len=recipe.adapter_len, adapter_layers=layers
        )
