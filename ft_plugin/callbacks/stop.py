"""Stop on SIGTERM / Ctrl-C at the end of the current step, with a checkpoint to resume from.

A first signal asks the trainer to save a checkpoint and stop after the step it is in;
a second Ctrl-C aborts at once. Under several processes the request is combined across
ranks at each step end (one all-reduce of a flag), so every rank stops at the same step.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from transformers import TrainerCallback


class StopOnSignal(TrainerCallback):
    """Turns SIGTERM and SIGINT into a clean stop: checkpoint, then end of training."""

    def __init__(self) -> None:
        self.requested: str | None = None  # name of the signal that asked to stop
        self.stopped_at: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        self.requested = signal.Signals(signum).name
        print(f"\nft-plugin: {self.requested}: stopping after this step and saving a checkpoint "
              "(resume with --resume; Ctrl-C again aborts)", file=sys.stderr, flush=True)  # fmt: skip

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if _any_rank(self.requested is not None):
            self.requested = self.requested or "SIGTERM"  # another rank was signalled
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _any_rank(flag: bool) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
