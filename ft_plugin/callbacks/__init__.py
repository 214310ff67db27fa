"""Trainer callbacks that ft-plugin adds to every run."""

from .memory import PeakMemoryCallback, peak_memory_mb

__all__ = ["PeakMemoryCallback", "peak_memory_mb"]
