"""Silence third-party messages that ft-plugin causes and no user can act on.

Only these, by exact origin: warnings that are the user's to fix (a recipe setting,
their data, their hardware) stay visible.

- PEFT asks every model for ``is_gradient_checkpointing``, a name transformers 5
  deprecated (it warns with a FutureWarning on each run);
- bitsandbytes, imported for QLoRA, logs on CPUs with AVX512-BF16 that it could not
  fetch an optional kernel from the Hub (``kernels-community``); the CPU path it falls
  back to is the one that works offline. kernels >= 0.19 adds, in offline mode, that it
  skipped the publisher trust check of that same kernel.
"""

from __future__ import annotations

import logging
import warnings

_DONE = False


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def silence_third_party_noise() -> None:
    """Install the filters above once per process."""
    global _DONE
    if _DONE:
        return
    warnings.filterwarnings(
        "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
        _DropMessage("Failed to load CPU gemm_4bit_forward from kernels-community")
    )
    logging.getLogger("kernels._internals.hf_hub").addFilter(
        _DropMessage("Skipping publisher trust check for 'kernels-community/")
    )
    _DONE = True
