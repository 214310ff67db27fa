"""What ft-plugin adds to every trainer: peak memory in the logs, rows and tokens counted,
a clean stop on a signal, and the run directory's live status and progress."""

from .counting import CountingTrainerMixin, batch_rows_and_tokens
from .memory import PeakMemoryCallback, peak_memory_mb
from .progress import ProgressLog
from .stop import StopOnSignal

__all__ = [
    "CountingTrainerMixin",
    "PeakMemoryCallback",
    "ProgressLog",
    "StopOnSignal",
    "batch_rows_and_tokens",
    "peak_memory_mb",
]
