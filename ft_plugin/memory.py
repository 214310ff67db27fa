"""Memory of this process, in MiB: the peak (for reports) and the current resident size.

A base-layer module (standard library, psutil, torch only) that training callbacks, the
evaluation runner and benchmarks share.

>>> now = current_rss_mb()
>>> peak_rss_mb() >= now > 0
True
"""

from __future__ import annotations

import sys

import psutil

__all__ = ["current_rss_mb", "peak_memory_mb", "peak_rss_mb"]

_MIB = 2**20


def current_rss_mb() -> float:
    """Resident set size of this process now (psutil), in MiB.

    >>> current_rss_mb() > 0
    True
    """
    return psutil.Process().memory_info().rss / _MIB


def peak_rss_mb() -> float:
    """Largest resident set size of this process so far, in MiB.

    ``getrusage``'s ``ru_maxrss`` is the kernel's true peak (psutil reports the peak only
    on Windows, as ``peak_wset``; elsewhere only the current RSS, which is the fallback).

    >>> now = current_rss_mb()
    >>> peak_rss_mb() >= now
    True
    """
    try:
        import resource
    except ImportError:  # Windows
        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / _MIB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = rss / _MIB if sys.platform == "darwin" else rss / 2**10  # macOS bytes, Linux KiB
    return max(peak, current_rss_mb())  # the kernel syncs ru_maxrss lazily (a few pages)


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
