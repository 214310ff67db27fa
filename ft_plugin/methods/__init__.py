"""Fine-tuning methods: one module (or folder) each, found through `ft_plugin.registry`."""

from .base import FineTuningMethod

__all__ = ["FineTuningMethod"]
