"""Peak memory in the training logs (measured by :mod:`ft_plugin.utils.memory`)."""

from __future__ import annotations

from transformers import TrainerCallback

from ft_plugin.utils.memory import peak_memory_mb

__all__ = ["PeakMemoryCallback", "peak_memory_mb"]


class PeakMemoryCallback(TrainerCallback):
    """Adds `peak_memory_mb` to every log line (TensorBoard and the console)."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003
        if logs is not None:
            logs["peak_memory_mb"] = round(peak_memory_mb(), 1)
