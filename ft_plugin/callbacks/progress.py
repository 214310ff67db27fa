"""The run directory's live state: ``status.json`` and ``progress.jsonl`` as training goes.

Whatever watches a run from outside the process (the Space's Train tab, a shell with
``tail -f``) reads these two files and never the trainer: LLaMA-Factory's board does
the same with its ``trainer_log.jsonl``. Only the main process writes.
"""

from __future__ import annotations

import os
import time
from typing import Any

from transformers import TrainerCallback

from ft_plugin.rundir import RunDir

# Trainer log keys copied into progress.jsonl (the rest stay in TensorBoard).
LOGGED = ("loss", "eval_loss", "learning_rate", "grad_norm", "peak_memory_mb", "epoch")
STEP_KEYS = ("loss", "eval_loss")  # a training or evaluation log, not the end summary


class ProgressLog(TrainerCallback):
    """Writes ``status.json`` (running, with step and max_steps) and one line per log event
    to ``progress.jsonl``: step, max_steps, seconds since the start, tokens/s and the
    logged values. ``trainer`` gives the tokens counted so far (``tokens_seen``)."""

    def __init__(self, run_dir: Any, trainer: Any) -> None:
        self.run = RunDir(run_dir)
        self.trainer = trainer
        self._started = time.perf_counter()
        self._tokens_at_start = 0

    def _main(self, state: Any) -> bool:
        return bool(state.is_world_process_zero)

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self._started = time.perf_counter()
        self._tokens_at_start = getattr(self.trainer, "tokens_seen", 0)
        if self._main(state):
            self.run.write_status(
                "running", step=state.global_step, max_steps=state.max_steps, pid=os.getpid()
            )

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if not self._main(state) or not any(k in (logs or {}) for k in STEP_KEYS):
            return  # the end-of-training summary (train_runtime, …) is metrics.json's
        elapsed = time.perf_counter() - self._started
        processes = max(1, int(getattr(args, "world_size", 1)))
        tokens = (getattr(self.trainer, "tokens_seen", 0) - self._tokens_at_start) * processes
        record: dict[str, Any] = {"step": state.global_step, "max_steps": state.max_steps,
                                  "seconds": round(elapsed, 2)}  # fmt: skip
        if tokens and elapsed > 0:
            record["tokens_per_second"] = round(tokens / elapsed, 1)
        record |= {k: logs[k] for k in LOGGED if isinstance(logs.get(k), (int, float))}
        self.run.append_progress(record)
        self.run.write_status(
            "running", step=state.global_step, max_steps=state.max_steps, pid=os.getpid()
        )
