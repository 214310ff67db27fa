"""Serving metrics: latency percentiles, throughput, memory, size on disk, cost."""

from __future__ import annotations

from typing import Any

import numpy as np


def serving_metrics(
    latencies_ms: list[float],
    tokens_per_second: float,
    *,
    peak_memory_mb: float,
    weights_bytes: int | None,
    price_per_hour: float | None,
) -> dict[str, Any]:
    """Flat serving metrics; cost assumes requests served one after another on one machine.

    ``cost_per_1k_requests = price_per_hour × mean latency (h) × 1000``.

    Example:
        >>> serving_metrics([100.0, 200.0], 50.0, peak_memory_mb=900.0, weights_bytes=2**20,
        ...                 price_per_hour=3.6)["cost_per_1k_requests"]
        0.15
    """
    values = np.asarray(latencies_ms, dtype=float)
    metrics: dict[str, Any] = {
        "latency_ms_p50": round(float(np.percentile(values, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(values, 95)), 2),
        "tokens_per_second": round(tokens_per_second, 2),
        "peak_memory_mb": round(peak_memory_mb, 1),
    }
    if weights_bytes is not None:  # the trained weights on disk; a baseline has none of its own
        metrics["weights_size_mb"] = round(weights_bytes / 2**20, 3)
    if price_per_hour is not None:
        mean_hours = float(values.mean()) / 3_600_000
        metrics["cost_per_1k_requests"] = round(price_per_hour * mean_hours * 1000, 6)
    return metrics
