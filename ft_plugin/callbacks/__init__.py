"""What ft-plugin adds to every trainer: peak memory in the logs, rows and tokens counted."""

from .counting import CountingTrainerMixin, batch_rows_and_tokens
from .memory import PeakMemoryCallback, peak_memory_mb
from .stop import StopOnSignal

__all__ = [
    "CountingTrainerMixin",
    "PeakMemoryCallback",
    "StopOnSignal",
    "batch_rows_and_tokens",
    "peak_memory_mb",
]
