"""The run directory's live state (status.json, progress.jsonl): what a watcher reads;
and what a terminal shows of long work (bars, round lines), without third-party bars."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
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
    from ft_plugin.utils.memory import peak_memory_mb

    ballast = bytearray(1536 * 2**20)  # 1.5 GiB resident before the run, then freed
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    before = peak_memory_mb()
    del ballast
    result = train(tiny_recipe(tmp_path, "lora", max_steps=2), str(tmp_path / "run"))
    assert result.metrics["peak_memory_mb"] < before - 1024


class Terminal(io.StringIO):
    """stderr as a person's terminal (tqdm draws its bars only there)."""

    def isatty(self) -> bool:
        return True


def test_loading_weights_draws_no_bar_once_quiet_and_other_bars_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ft_plugin.utils.noise leaves transformers' "Loading weights" bar out, and only that bar."""
    from tiny import save_tiny_model
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    from ft_plugin.utils import noise

    model_dir = save_tiny_model(tmp_path / "model")
    shown = {}
    previous = transformers_logging.set_tqdm_hook(None)  # as if nothing quieted it yet
    try:
        for quiet in (False, True):
            if quiet:
                noise._quiet_weight_loading(transformers_logging)
            monkeypatch.setattr(sys, "stderr", Terminal())
            AutoModelForCausalLM.from_pretrained(model_dir)
            list(transformers_logging.tqdm(range(3), desc="Writing model shards"))
            shown[quiet] = sys.stderr.getvalue()
    finally:
        transformers_logging.set_tqdm_hook(previous)
    assert "Loading weights" in shown[False]  # what a terminal showed before
    assert "Loading weights" not in shown[True]
    assert "Writing model shards" in shown[True]


def test_quieting_waits_for_transformers_to_be_imported() -> None:
    """The command line quiets transformers first thing, without importing it (and torch)
    for a command that loads no model; the hook is in place once something imports it."""
    code = (
        "import sys; from ft_plugin.utils.noise import silence_third_party_noise\n"
        "silence_third_party_noise(); assert 'transformers' not in sys.modules\n"
        "from transformers.utils import logging; assert logging._tqdm_hook is not None\n"
        "assert isinstance(logging.tqdm(range(2), desc='Loading weights'), logging.EmptyTqdm)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_federated_rounds_are_printed_as_they_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ft_plugin.federated.deployment import Federation
    from ft_plugin.federated.layout import FederatedDir

    folder = FederatedDir(tmp_path)
    federation = Federation(folder)
    assert federation._show_rounds(0, 3) == 0  # no rounds.json yet
    folder.path.mkdir()
    first = {"round": 1, "clients": [{"train_loss": 2.0}, {"train_loss": 1.0}],
             "refused": [], "eval_loss": 1.25, "seconds": 3.4}  # fmt: skip
    second = {"round": 2, "clients": [{"train_loss": 0.5}], "refused": [{"node": 9}],
              "kept_previous": True, "seconds": 2.0}  # fmt: skip
    folder.rounds_path.write_text(json.dumps([first]))
    assert federation._show_rounds(0, 3) == 1
    assert federation._show_rounds(1, 3) == 1  # shown once
    folder.rounds_path.write_text(json.dumps([first, second]))
    assert federation._show_rounds(1, 3) == 2
    assert capsys.readouterr().err.splitlines() == [
        "ft-plugin federated: round 1 of 3: 2 sites answered, mean train loss 1.5000, "
        "held-out loss 1.2500 (3 s)",
        "ft-plugin federated: round 2 of 3: 1 site answered, 1 left out, mean train loss "
        "0.5000, the global adapter stays as it was (2 s)",
    ]
