"""Two processes on this machine's CPUs (torchrun + gloo, through accelerate's DDP config).

The same loss curve as one process at the same global batch, one run directory written
by rank 0, a clean stop on SIGTERM that ``--resume`` continues to the same weights, and
no process left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import tiny_recipe
from safetensors.torch import load_file

from ft_plugin.train import train

REPO = Path(__file__).resolve().parent.parent
STEPS = 200  # long enough that SIGTERM lands mid-run on a fast machine
LOSS_TOLERANCE = 1e-3  # relative, per logged step: fp32, gradients all-reduced (measured 2e-4)
pytestmark = pytest.mark.slow


def _launch(recipe: str, out: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(REPO / "recipes" / "accelerate" / "ddp.yaml"), "--num_processes", "2",
        "--main_process_port", "0", "-m", "ft_plugin.train", recipe, "--set", f"max_steps={STEPS}",
        "--set", "micro_batch_size=2", "--set", "save_steps=4", "--set", "learning_rate=1e-3", "--output-dir", str(out), *extra,
    ]  # fmt: skip
    log = open(out.parent / f"{out.name}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=REPO)  # fmt: skip


def _finish(process: subprocess.Popen, out: Path, timeout: float = 600) -> str:
    try:
        process.wait(timeout=timeout)
    finally:
        _kill_group(process)
    return (out.parent / f"{out.name}.log").read_text()


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _losses(run: Path) -> list[float]:
    state = json.loads((run / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def _left_running(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or []):
            found.append(" ".join(proc.info["cmdline"]))
    return found


def test_two_processes_train_resume_and_match_one_process(tmp_path: Path) -> None:
    loaded = tiny_recipe(
        tmp_path, "lora", extra="lora_dropout: 0.0\nsample_packing: true\nval_set_size: 1\n"
    )
    single = train(
        tiny_recipe(tmp_path, "lora", extra="lora_dropout: 0.0\nsample_packing: true\nval_set_size: 1\n",
                    max_steps=STEPS, micro_batch_size=4, save_steps=4, learning_rate=1e-3),
        str(tmp_path / "one"),
    )  # fmt: skip

    full = tmp_path / "two"
    log = _finish(_launch(loaded.source, full), full)
    assert "done: train_loss" in log, log[-3000:]
    metrics = json.loads((full / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["distributed"] == "multi_cpu"
    assert metrics["rows_per_step"] == single.metrics["rows_per_step"] == 4  # same global batch
    assert len(_losses(full)) == STEPS
    assert _losses(full) == pytest.approx(_losses(single.run_dir), rel=LOSS_TOLERANCE)
    assert sorted(p.name for p in full.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in single.run_dir.iterdir()
    ), "rank 0 writes the same run directory as a single process"

    stopped = tmp_path / "stopped"
    process = _launch(loaded.source, stopped)
    deadline = time.monotonic() + 300
    while not (stopped / "checkpoints" / "checkpoint-4").is_dir() and time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "stopped.log").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    _finish(process, stopped)
    record = json.loads((stopped / "metrics.json").read_text())
    assert record["stopped"]["signal"] == "SIGTERM" and record["steps"] < STEPS
    assert (stopped / "checkpoints" / f"checkpoint-{record['steps']}").is_dir()

    log = _finish(_launch(loaded.source, stopped, "--resume"), stopped)
    assert "done: train_loss" in log, log[-3000:]
    resumed, uninterrupted = (
        load_file(run / "adapter_model.safetensors") for run in (stopped, full)
    )
    for name, tensor in uninterrupted.items():
        assert (resumed[name] - tensor).abs().max() < 1e-6, name
    assert _left_running(str(tmp_path)) == []


def test_accelerate_cpu_flag_with_several_processes_is_refused_clearly(tmp_path: Path) -> None:
    """Without mpirun, `accelerate launch --cpu --num_processes 2` starts one process."""
    loaded = tiny_recipe(tmp_path, "lora")
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "ft_plugin.train", loaded.source, "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode != 0
    assert "recipes/accelerate/ddp.yaml --num_processes N" in result.stderr
    assert not (tmp_path / "run").exists()


def test_an_fsdp_launch_on_cpus_says_it_runs_plain_data_parallel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from accelerate.utils import DistributedType

    from ft_plugin.engine import launch_notes

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    (note,) = launch_notes(False, DistributedType.MULTI_CPU)
    assert "enables it on GPUs only" in note and "multi_cpu" in note
    assert launch_notes(True, DistributedType.FSDP) == []
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    assert launch_notes(False, DistributedType.MULTI_CPU) == []
