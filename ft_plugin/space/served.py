"""The model the Space serves: one loaded base model, its named adapters, the locks that
serialise its use and loading, and the gate that admits model work.

The services (:mod:`.compare`, :mod:`.evaluation`, :mod:`.card`, :mod:`.serving`) use it;
:class:`~ft_plugin.space.state.SpaceState` is one, with the services attached.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from ft_plugin.errors import UserError

from .admission import ModelGate
from .loading import AdapterInfo
from .settings import Limits

NO_MODEL = (
    "no fine-tuned model in this Space yet: its owner trains one in the Train tab and serves it"
)


class ServedModels:
    """The model, its adapters and the locks, shared by the Space's services.

    One copy of the base weights serves every answer: adapters are named adapters of one
    ``PeftModel`` (``load_adapter``/``set_adapter``) and base answers come from the same
    model with the adapter disabled. ``model_lock`` serialises model use across events,
    ``loading_lock`` the loading of models and tokenizers (serving a run, the Train tab's
    data step); ``gate`` admits model work within ``limits``.
    """

    def __init__(self, loaded: Any, adapters: list[AdapterInfo], *, limits: Limits) -> None:
        self.loaded = loaded
        self.adapters = {a.label: a for a in adapters}
        self.limits = limits
        self.model_lock = threading.RLock()
        self.loading_lock = threading.RLock()  # one model or tokenizer load at a time
        self.gate = ModelGate(running=limits.concurrency, admitted=limits.max_queue)

    @property
    def adapter_labels(self) -> list[str]:
        """The served adapters' labels, in the order they were loaded."""
        return list(self.adapters)

    def adapter(self, label: str | None = None) -> AdapterInfo:
        """The adapter called ``label`` (default: the first served one)."""
        if not self.adapters:
            raise UserError(NO_MODEL)
        if not label:
            return next(iter(self.adapters.values()))
        if label not in self.adapters:
            raise UserError(f"adapter {label!r}: not loaded; choose one of {self.adapter_labels}")
        return self.adapters[label]

    def replace_models(self, loaded: Any, adapters: list[AdapterInfo]) -> None:
        """Swap in a newly loaded model and its adapters, between two model jobs."""
        with self.model_lock:
            self.loaded, self.adapters = loaded, {a.label: a for a in adapters}

    @contextlib.contextmanager
    def using(self, label: str | None) -> Iterator[AdapterInfo]:
        """Hold the model (its lock, not the gate) with the adapter ``label`` active."""
        info = self.adapter(label)
        with self.model_lock:
            if info.peft_name is not None:
                self.loaded.model.set_adapter(info.peft_name)
            yield info

    def example_prompts(self, label: str | None = None) -> list[str]:
        """The run's template examples, or one generic prompt."""
        template = self.adapter(label).template if self.adapters else None
        if template and template.examples:
            return list(template.examples)
        return ["Explain what fine-tuning a language model means, in two sentences."]

    def disclaimer(self, label: str | None = None) -> str | None:
        """The run's template disclaimer, shown above the tabs."""
        template = self.adapter(label).template if self.adapters else None
        return template.disclaimer.strip() if template and template.disclaimer else None
