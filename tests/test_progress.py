"""The run directory's live state (status.json, progress.jsonl): what a watcher reads."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from helpers import tiny_recipe
from transformers import TrainerCallback

from ft_plugin.rundir import RunDir
from ft_plugin.train import train


class FailAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if state.global_step == 2:
            raise RuntimeError("disk full\nwhile writing")


def test_progress_has_one_line_per_logged_step_and_status_says_done(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra="val_set_size: 6\n", max_steps=4, eval_steps=2)
    result = train(loaded, str(tmp_path / "run"))
    run = RunDir(result.run_dir)
    progress = run.progress()
    state = json.loads(run.trainer_state_path.read_text())
    # every trainer log event with a loss is a progress line with the same value
    logged = [h for h in state["log_history"] if "loss" in h]
    lines = [p for p in progress if "loss" in p]
    assert [p["step"] for p in lines] == [h["step"] for h in logged] == [1, 2, 3, 4]
    assert [p["loss"] for p in lines] == pytest.approx([h["loss"] for h in logged])
    assert [p["step"] for p in progress if "eval_loss" in p] == [2, 4]
    assert all(p["max_steps"] == 4 and p["seconds"] >= 0 for p in progress)
    assert all(p["tokens_per_second"] > 0 for p in lines)
    status = run.status()
    assert status["state"] == "done" and status["step"] == 4 and status["max_steps"] == 4


def test_a_training_that_raises_leaves_status_failed_with_the_error_line(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", max_steps=4)
    with pytest.raises(RuntimeError):
        train(loaded, str(tmp_path / "run"), callbacks=[FailAt()])
    status = RunDir(tmp_path / "run").status()
    assert status["state"] == "failed"
    assert status["error"] == "while writing"  # the last line of the message


def test_a_fresh_start_of_the_same_recipe_clears_the_old_progress(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", max_steps=2)
    train(loaded, str(tmp_path / "run"))
    train(loaded, str(tmp_path / "run"))
    assert [p["step"] for p in RunDir(tmp_path / "run").progress()] == [1, 2]


class SignalAt(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if state.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what the Space's Stop sends


def test_a_stopped_run_is_not_finished_until_a_resume_completes_it(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", max_steps=5)
    train(loaded, str(tmp_path / "run"), callbacks=[SignalAt()])
    run = RunDir(tmp_path / "run")
    assert run.status()["state"] == "stopped" and run.metrics()["steps"] == 3
    # metrics.json is written at the stop, but reuse (benchmarks, stages) must not take
    # a 3-step run for the 5-step one
    assert run.is_stopped() and not run.is_finished()
    assert run.finished_metrics(loaded) is None
    train(loaded, str(tmp_path / "run"), resume=True)
    assert run.is_finished() and not run.is_stopped() and run.metrics()["steps"] == 5


def test_a_second_run_in_one_process_reports_its_own_peak_memory(tmp_path: Path) -> None:
    from ft_plugin.memory import peak_memory_mb

    ballast = bytearray(1536 * 2**20)  # 1.5 GiB resident before the run, then freed
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    before = peak_memory_mb()
    del ballast
    result = train(tiny_recipe(tmp_path, "lora", max_steps=2), str(tmp_path / "run"))
    assert result.metrics["peak_memory_mb"] < before - 1024
