"""Axolotl's loss watchdog: stop a run whose training loss stays above a threshold.

A loss that stays far above where it started means training broke down (a learning rate
too high, bad data); continuing only burns time. The run stops after the step in which
the ``patience``-th logged loss in a row was above ``threshold``, says why on stderr, and
``engine.run`` records it as stopped with that reason in ``status.json`` and
``metrics.json``. Every process sees the same logged (already averaged) loss, so every
rank stops at the same step.
"""

from __future__ import annotations

import sys
from typing import Any

from transformers import TrainerCallback

DEFAULT_PATIENCE = 3  # Axolotl's default


class LossWatchdog(TrainerCallback):
    """Stops training when ``patience`` logged losses in a row exceed ``threshold``.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> dog, control = LossWatchdog(2.0, patience=2), NS(should_training_stop=False)
        >>> for step, loss in enumerate([3.0, 1.0, 3.0, 4.0], start=1):
        ...     _ = dog.on_log(None, NS(global_step=step, is_world_process_zero=False), control, logs={"loss": loss})
        >>> control.should_training_stop, dog.stopped_at
        (True, 4)
    """

    def __init__(self, threshold: float, patience: int | None = None) -> None:
        self.threshold = threshold
        self.patience = patience or DEFAULT_PATIENCE
        self.above: list[tuple[int, float]] = []  # (step, loss) of the current run of high losses
        self.reason: str | None = None
        self.stopped_at: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        loss = (logs or {}).get("loss")
        if not isinstance(loss, int | float) or self.reason is not None:
            return control
        if loss <= self.threshold:
            self.above.clear()
            return control
        self.above.append((state.global_step, float(loss)))
        if len(self.above) >= self.patience:
            first, last = self.above[0][0], self.above[-1][0]
            self.reason = (
                f"loss {loss:.4g} stayed above loss_watchdog_threshold {self.threshold:g} for "
                f"{len(self.above)} logged steps (steps {first}-{last}): training broke down; "
                "lower learning_rate or check the data"
            )
            self.stopped_at = state.global_step
            control.should_training_stop = True
            if state.is_world_process_zero:
                print(f"ft-plugin: stopping: {self.reason}", file=sys.stderr, flush=True)
        return control


def watchdog_stop(trainer: Any) -> dict[str, Any] | None:
    """``{"reason", "step"}`` when a loss watchdog of ``trainer`` stopped the run, else None."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, LossWatchdog) and callback.reason is not None:
            return {"reason": callback.reason, "step": callback.stopped_at}
    return None
