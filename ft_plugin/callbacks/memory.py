"""Peak memory: max allocated on a GPU, peak resident set size on a CPU."""

from __future__ import annotations

import resource
import sys

from transformers import TrainerCallback


def peak_memory_mb() -> float:
    """Peak memory of this process so far, in MiB (GPU allocator if CUDA is in use, else RSS)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


class PeakMemoryCallback(TrainerCallback):
    """Adds `peak_memory_mb` to every log line (TensorBoard and the console)."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003
        if logs is not None:
            logs["peak_memory_mb"] = round(peak_memory_mb(), 1)
