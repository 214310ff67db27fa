"""How many model requests (compare, evaluate) the Space takes at once.

Gradio's queue has one size for every event, so a burst of visitors' comparisons would
also refuse ratings and the owner's status; this gate counts model work only. At most
``running`` requests use the model, at most ``admitted`` run or wait, and the rest are
refused at once with one line.

Example:
    >>> gate = ModelGate(running=1, admitted=1)
    >>> with gate.slot():
    ...     gate.slot().__enter__()
    Traceback (most recent call last):
    ...
    ft_plugin.errors.UserError: this Space is busy: 1 request is running or waiting, its cap; try again in a minute
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ft_plugin.errors import UserError


class ModelGate:
    """A bounded waiting room in front of the model (thread-safe)."""

    def __init__(self, *, running: int, admitted: int) -> None:
        self.admitted = max(admitted, running)
        self._running = threading.BoundedSemaphore(max(1, running))
        self._count = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a model slot (waiting for one), or refuse when ``admitted`` are in."""
        with self._lock:
            if self._count >= self.admitted:
                plural = "request is" if self.admitted == 1 else "requests are"
                raise UserError(
                    f"this Space is busy: {self.admitted} {plural} running or waiting, its "
                    "cap; try again in a minute"
                )
            self._count += 1
        try:
            with self._running:
                yield
        finally:
            with self._lock:
                self._count -= 1

    @property
    def in_use(self) -> int:
        """Requests running or waiting now."""
        with self._lock:
            return self._count
