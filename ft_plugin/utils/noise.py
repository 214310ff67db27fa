"""Silence third-party messages that ft-plugin causes and no user can act on.

Only these, by exact origin: warnings that are the user's to fix (a recipe setting,
their data, their hardware) stay visible.

- PEFT asks every model for ``is_gradient_checkpointing``, a name transformers 5
  deprecated (it warns with a FutureWarning on each run);
- bitsandbytes, imported for QLoRA, logs on CPUs with AVX512-BF16 that it could not
  fetch an optional kernel from the Hub (``kernels-community``); the CPU path it falls
  back to is the one that works offline. kernels >= 0.19 adds, in offline mode, that it
  skipped the publisher trust check of that same kernel;
- transformers 5 draws a "Loading weights" bar over the tensors (``272/272``) at every
  ``from_pretrained``, several per command (train, eval, merge, export, the Space). Only
  that bar goes: transformers' ``disable_progress_bar()`` would also hide the Hub's
  download bars, progress a person waits for (the training bar is tqdm's own).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

_DONE = False
_DROPPED_BARS = ("Loading weights",)  # transformers' tqdm ``desc`` of a bar to leave out


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def _quiet_weight_loading(transformers_logging: ModuleType) -> None:
    """A transformers tqdm hook (``set_tqdm_hook``) that draws nothing for the bars above
    and leaves every other bar as it was (to the hook before it, or to transformers)."""
    previous = transformers_logging.set_tqdm_hook(None)

    def hook(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get("desc") in _DROPPED_BARS:
            return transformers_logging.EmptyTqdm(*args, **kwargs)
        return previous(factory, args, kwargs) if previous else factory(*args, **kwargs)

    transformers_logging.set_tqdm_hook(hook)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``then(module)`` right after the module ``name`` is first imported: a command
    that loads no model (``recipes list``) must not pay for importing transformers (and
    torch) to quiet it."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once; the finders after it find the module
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            run, then = spec.loader.exec_module, self.then

            def exec_module(module: ModuleType) -> None:
                run(module)
                then(module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _after_import(name: str, then: Callable[[ModuleType], None]) -> None:
    if name in sys.modules:
        then(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, then))


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
    _after_import("transformers.utils.logging", _quiet_weight_loading)
    _DONE = True
