"""What ft-plugin adds to every trainer: peak memory in the logs, rows and tokens counted,
a clean stop on a signal or on a loss that broke down, the run directory's live status and
progress, and the trackers' environment."""

from .counting import CountingTrainerMixin, batch_rows_and_tokens
from .memory import PeakMemoryCallback, peak_memory_mb
from .progress import ProgressLog
from .stop import StopOnSignal
from .trackers import close_trackers, open_trackers
from .watchdog import LossWatchdog, watchdog_stop

__all__ = [
    "CountingTrainerMixin",
    "LossWatchdog",
    "PeakMemoryCallback",
    "ProgressLog",
    "StopOnSignal",
    "batch_rows_and_tokens",
    "close_trackers",
    "open_trackers",
    "peak_memory_mb",
    "watchdog_stop",
]
