"""Full fine-tuning: every weight trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import FineTuningMethod

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


class FullMethod(FineTuningMethod):
    """All parameters trainable; the result is a full checkpoint."""

    name = "full"
    uses_peft = False
    mergeable = False
    not_mergeable_reason = "full fine-tuning already wrote full weights; there is nothing to merge"

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
