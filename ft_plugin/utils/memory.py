"""Memory of this process, in MiB: the peak (for reports) and the current resident size.

A base-layer module (standard library, psutil, torch only) that training callbacks, the
evaluation runner and benchmarks share.

>>> now = current_rss_mb()
>>> peak_rss_mb() >= now > 0
True
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import psutil

__all__ = ["current_rss_mb", "peak_memory_mb", "peak_rss_mb", "reset_peak"]

_MIB = 2**20


def current_rss_mb() -> float:
    """Resident set size of this process now (psutil), in MiB.

    >>> current_rss_mb() > 0
    True
    """
    return psutil.Process().memory_info().rss / _MIB


def peak_rss_mb() -> float:
    """Largest resident set size of this process since it started or since ``reset_peak``,
    in MiB.

    Linux's ``VmHWM`` (``/proc/self/status``) is the kernel's peak and can be reset;
    elsewhere ``getrusage``'s ``ru_maxrss`` (since the start; psutil reports a peak only on
    Windows, as ``peak_wset``). The current RSS is the floor (the kernel syncs lazily).

    >>> now = current_rss_mb()
    >>> peak_rss_mb() >= now
    True
    """
    try:
        status = Path("/proc/self/status").read_text()
        peak = (
            next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
            / 2**10
        )
    except (OSError, StopIteration, ValueError):
        peak = _ru_maxrss_mb()
    return max(peak, current_rss_mb())


def _ru_maxrss_mb() -> float:
    try:
        import resource
    except ImportError:  # Windows
        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / _MIB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / _MIB if sys.platform == "darwin" else rss / 2**10  # macOS bytes, Linux KiB


def reset_peak() -> None:
    """Start a new peak: ``peak_memory_mb`` reports the largest size from now on, so a
    second training in one process (stages, per-task adapters, a benchmark driver) does
    not report the first one's peak. Where the OS cannot reset it, the peak stays the
    process's.

    >>> reset_peak(); peak_memory_mb() >= current_rss_mb()
    True
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):  # Linux: resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb() -> float:
    """Peak memory of this process so far, in MiB: the CUDA allocator's peak when CUDA is
    in use (``torch.cuda.max_memory_allocated``), else the peak RSS.

    >>> peak_memory_mb() > 0
    True
    """
    torch = sys.modules.get("torch")  # not imported: CUDA cannot be in use
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / _MIB
    return peak_rss_mb()
