"""Test setup: offline, quiet, importable helpers (`from tiny import tiny_llama`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent

# The kinds of slow test (pyproject.toml's markers say why each is slow); each is also `slow`.
SLOW_KINDS = ("e2e", "browser", "federated", "hub")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` is the umbrella: a test of one of the slow kinds is slow too, so that
    `-m "not slow"` (`make test-fast`) stays the fast selection."""
    for item in items:
        if not item.get_closest_marker("slow") and any(
            item.get_closest_marker(kind) for kind in SLOW_KINDS
        ):
            item.add_marker(pytest.mark.slow)
