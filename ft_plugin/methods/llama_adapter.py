"""LLaMA-Adapter: zero-initialised adaption prompts in the top layers (PEFT `AdaptionPromptConfig`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import FineTuningMethod

if TYPE_CHECKING:
    import torch
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

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        peft_model = super().prepare(model, recipe)
        wrapper = peft_model.base_model
        # PEFT's AdaptionPromptModel binds `forward = model.forward` once, at creation, so a
        # later patch of the inner model's forward (TRL's fused LM head, which SFTTrainer
        # installs) would be bypassed. Delegate on every call instead.
        wrapper.forward = lambda *args, **kwargs: wrapper.model.forward(*args, **kwargs)
        return peft_model
