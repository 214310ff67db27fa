"""Federated fine-tuning on Flower's Deployment Engine, on 127.0.0.1 with a tiny model:
partitions, FedAvg and FFA-LoRA end to end, what each client process opens, resume
after the SuperLink dies, and no Flower process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny_recipe
from safetensors.torch import load_file

from ft_plugin.errors import UserError
from ft_plugin.federated.layout import FederatedDir
from ft_plugin.federated.partition import column_split, dirichlet_split, iid_split

pytest.importorskip("flwr")
AUDIT = Path(__file__).parent / "federated_audit"
FEDERATED = "federated:\n  num_clients: 2\n  rounds: {rounds}\n  local_steps: 2\n  min_clients: 2\n  strategy: {strategy}\n"


def federated_recipe(tmp_path: Path, rounds: int = 2, strategy: str = "fedavg"):  # noqa: ANN201
    extra = "val_set_size: 4\n" + FEDERATED.format(rounds=rounds, strategy=strategy)
    return tiny_recipe(tmp_path, "lora", extra=extra)


def flower_processes(run_dir: Path) -> list[int]:
    """Processes whose environment or command line points into this run directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            text = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(run_dir).encode() in text:
            found.append(int(proc.name))
    return found


def start_federated(recipe: Path, run_dir: Path) -> tuple[list[str], subprocess.Popen[str]]:
    """``ft-plugin federated RECIPE`` as a user runs it, in its own process group."""
    command = [
        sys.executable,
        "-m",
        "ft_plugin",
        "federated",
        str(recipe),
        "--output-dir",
        str(run_dir),
    ]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    return command, child


# --------------------------------------------------------------------------- partitions


def test_partitions_cover_every_row_once_and_are_seeded() -> None:
    for parts in (iid_split(103, 4, seed=1), dirichlet_split(["a"] * 60 + ["b"] * 43, 4, 0.3, seed=1),
                  column_split([str(i % 5) for i in range(103)], 3)):  # fmt: skip
        assert sorted(i for p in parts for i in p) == list(range(103)) and all(parts)
    assert iid_split(50, 3, seed=7) == iid_split(50, 3, seed=7) != iid_split(50, 3, seed=8)
    skewed = dirichlet_split(["a"] * 500 + ["b"] * 500, 2, 0.05, seed=0)
    share_a = [sum(i < 500 for i in p) / len(p) for p in skewed]
    assert max(share_a) > 0.8  # a small alpha gives sites different label mixes
    with pytest.raises(UserError, match="the column has 2 distinct values"):
        column_split(["x", "y", "x"], 3)


def test_bad_federated_settings_are_one_message(tmp_path: Path) -> None:
    from ft_plugin.config import load_recipe

    with pytest.raises(UserError, match="federated.partition"):
        load_recipe("medical-lora", ["federated.partition=by-magic"])
    with pytest.raises(UserError, match="min_clients 3 is more than num_clients 2"):
        load_recipe("medical-lora", ["federated.num_clients=2", "federated.min_clients=3"])
    with pytest.raises(UserError, match="use strategy: fedavg with dp"):
        load_recipe("medical-lora", ["federated.strategy=ffa-lora", "federated.dp.noise_multiplier=0.1",
                                     "federated.dp.clipping_norm=1.0"])  # fmt: skip


# --------------------------------------------------------------------------- end to end


def test_fedavg_run_is_a_normal_run_directory_and_sites_read_only_their_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ft_plugin.federated.run import federated_train

    audit = tmp_path / "audit"
    audit.mkdir()
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(AUDIT), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("FT_PLUGIN_TEST_AUDIT_DIR", str(audit))
    result = federated_train(federated_recipe(tmp_path), str(tmp_path / "run"))
    fed, rounds = result.metrics["federated"], result.metrics["rounds"]
    assert fed["rounds_completed"] == 2 and [r["round"] for r in rounds] == [1, 2]
    assert all(len(r["clients"]) == 2 and r["eval_loss"] > 0 for r in rounds)
    assert fed["bytes_sent"] == fed["bytes_received"] > 0  # the whole adapter both ways
    assert (
        sum(c["num-examples"] for c in rounds[0]["clients"]) == 2 * 2 * 2
    )  # 2 sites × 2 steps × 2 rows
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-model")
    model = PeftModel.from_pretrained(base, str(result.run_dir))
    saved = load_file(FederatedDir(result.run_dir).global_path)
    state = {k.replace(".default", ""): v for k, v in model.state_dict().items() if "lora_" in k}
    for key, value in saved.items():
        torch.testing.assert_close(state[key.replace(".weight", ".weight")], value)
    assert (result.run_dir / "logs" / "rounds.png").stat().st_size > 0
    assert json.loads((result.run_dir / "status.json").read_text())["state"] == "done"
    # privacy of the silos: each client process opened its own rows only, the server none
    opened: dict[str, set[str]] = {}
    for log in audit.glob("*.txt"):
        node = log.name.split("-")[0]
        opened.setdefault(node, set()).update(Path(p).name for p in log.read_text().split())
    assert opened.get("0", set()) <= {"client-0.jsonl"} and "client-0.jsonl" in opened["0"]
    assert opened.get("1", set()) <= {"client-1.jsonl"} and "client-1.jsonl" in opened["1"]
    assert not opened.get("none")
    assert flower_processes(result.run_dir) == []


def test_ffa_lora_keeps_the_shared_a_and_sends_b_alone(tmp_path: Path) -> None:
    from ft_plugin.federated import weights
    from ft_plugin.federated.run import federated_train

    loaded = federated_recipe(tmp_path, strategy="ffa-lora")
    result = federated_train(loaded, str(tmp_path / "run"))
    fed = result.metrics["federated"]
    final = load_file(result.run_dir / "adapter_model.safetensors")
    start = weights.travelling(weights.adapter_state(weights.seeded_model(loaded)[0]), "fedavg")
    a_keys = [k for k in start if "lora_A" in k]
    assert a_keys and all(torch.equal(final[k], start[k]) for k in a_keys)  # frozen, shared
    assert any(final[k].abs().sum() > 0 for k in start if "lora_B" in k)  # B trained from zeros
    b_bytes = weights.payload_bytes({k: v for k, v in start.items() if "lora_B" in k})
    assert fed["bytes_received"] == b_bytes * 2 * 2  # B alone, 2 clients, 2 rounds
    assert fed["bytes_received"] < fed["bytes_sent"]


def test_a_dead_superlink_leaves_no_process_and_resume_finishes_the_rounds(tmp_path: Path) -> None:
    recipe = tmp_path / "fed.yaml"
    recipe.write_text(federated_recipe(tmp_path, rounds=3).to_yaml(), encoding="utf-8")
    run_dir = tmp_path / "run"
    command, child = start_federated(recipe, run_dir)
    folder = FederatedDir(run_dir)
    try:
        deadline = time.monotonic() + 300
        while not folder.rounds() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert folder.rounds(), "round 1 never completed"
        for pid in flower_processes(run_dir):
            if b"flower-superlink" in _cmdline(pid):
                os.killpg(pid, signal.SIGKILL)
        _, stderr = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 2 and "--resume" in stderr, stderr[-1500:]
    left = [(pid, _cmdline(pid)[:200]) for pid in flower_processes(run_dir)]
    assert left == []
    first = folder.rounds()[0]
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rounds = folder.rounds()
    assert [r["round"] for r in rounds] == [1, 2, 3] and rounds[0] == first  # kept, not redone
    assert json.loads((run_dir / "metrics.json").read_text())["federated"]["rounds_completed"] == 3
    assert flower_processes(run_dir) == []


def test_a_client_lost_mid_run_does_not_fail_the_rounds(tmp_path: Path) -> None:
    """Two clients, min_clients 1: client 1's SuperNode is killed during round 1; every
    round still completes on client 0 once the lost client's reply times out."""
    extra = ("val_set_size: 4\nfederated:\n  num_clients: 2\n  rounds: 2\n  local_steps: 2\n"
             "  min_clients: 1\n  round_timeout: 45\n")  # fmt: skip
    recipe = tmp_path / "fed.yaml"
    recipe.write_text(tiny_recipe(tmp_path, "lora", extra=extra).to_yaml(), encoding="utf-8")
    run_dir = tmp_path / "run"
    _, child = start_federated(recipe, run_dir)
    node_config = str(FederatedDir(run_dir).node(1) / "node.toml").encode()
    try:
        deadline = time.monotonic() + 240
        killed = False
        while not killed and time.monotonic() < deadline:
            pids = flower_processes(run_dir)
            if any(_is_client_app_of(pid, 1) for pid in pids):  # client 1 is training round 1
                for pid in pids:
                    if _is_client_app_of(pid, 1) or node_config in _cmdline(pid):
                        os.kill(pid, signal.SIGKILL)  # the site goes down mid-round
                killed = True
            time.sleep(0.2)
        assert killed, "client 1 never started round 1"
        _, stderr = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 0, stderr[-2000:]
    rounds = json.loads((run_dir / "metrics.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(1 <= len(r["clients"]) <= 2 for r in rounds) and len(rounds[0]["clients"]) == 1
    assert flower_processes(run_dir) == []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _is_client_app_of(pid: int, node: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        b"flwr-clientapp" in _cmdline(pid)
        and f"FT_PLUGIN_FEDERATED_NODE={node}".encode() in environ
    )


def test_client_side_clipping_bounds_the_global_update(tmp_path: Path) -> None:
    """Flower's DifferentialPrivacyClientSideFixedClipping + fixedclipping_mod: with noise
    0 the global change of a round is an average of updates clipped to the norm."""
    from ft_plugin.federated import weights
    from ft_plugin.federated.run import federated_train

    extra = ("val_set_size: 4\nfederated:\n  num_clients: 2\n  rounds: 1\n"
             "  local_steps: 3\n  min_clients: 2\n  dp:\n    noise_multiplier: 0.0\n"
             "    clipping_norm: 0.01\n    side: client\n")  # fmt: skip
    loaded = tiny_recipe(tmp_path, "lora", extra=extra, learning_rate=0.05)
    result = federated_train(loaded, str(tmp_path / "run"))
    start = weights.travelling(weights.adapter_state(weights.seeded_model(loaded)[0]), "fedavg")
    final = load_file(FederatedDir(result.run_dir).global_path)
    change = torch.sqrt(sum(((final[k] - start[k]) ** 2).sum() for k in start))
    assert 0 < float(change) <= 0.01 + 1e-5
    assert result.metrics["federated"]["dp"]["side"] == "client"
