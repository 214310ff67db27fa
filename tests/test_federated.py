"""Federated fine-tuning on Flower's Deployment Engine, on 127.0.0.1 with a tiny model:
partitions, FedAvg and FFA-LoRA end to end, what each client process opens, resume
after the SuperLink dies, and no Flower process left behind."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import pytest
import torch
from helpers import require, tiny_recipe
from safetensors.torch import load_file

from ft_plugin.errors import UserError
from ft_plugin.federated.layout import FederatedDir
from ft_plugin.federated.partition import column_split, dirichlet_split, iid_split

require("flwr", "the federated extra (make setup installs .[all])")
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


def listening_addresses(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket these processes listen on (Linux /proc)."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                host, port = fields[1].split(":")
                raw = b"".join(bytes.fromhex(host[i : i + 8])[::-1] for i in range(0, len(host), 8))
                found.add((str(ipaddress.ip_address(raw)), int(port, 16)))
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
        load_recipe("medical-lora", {"federated.partition": "by-magic"})
    with pytest.raises(UserError, match="min_clients 3 is more than num_clients 2"):
        load_recipe("medical-lora", {"federated.num_clients": 2, "federated.min_clients": 3})
    with pytest.raises(UserError, match="use strategy: fedavg with dp"):
        load_recipe("medical-lora", {"federated.strategy": "ffa-lora",
                                     "federated.dp.noise_multiplier": 0.1,
                                     "federated.dp.clipping_norm": 1.0})  # fmt: skip


# --------------------------------------------------------------------------- end to end


@pytest.mark.federated
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
    # would open Flower's legacy gRPC Fleet API on 0.0.0.0:9092 if it reached the SuperLink
    monkeypatch.setenv("FLWR_INTERNAL_GRPC_FLEET_API", "1")
    listening: set[tuple[str, int]] = set()
    running = threading.Event()
    running.set()

    def watch() -> None:  # every socket the federation's processes listen on, while it runs
        while running.is_set():
            listening.update(listening_addresses(flower_processes(tmp_path / "run")))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = federated_train(federated_recipe(tmp_path), str(tmp_path / "run"))
    finally:
        running.clear()
        watcher.join()
    assert listening and all(ipaddress.ip_address(a).is_loopback for a, _ in listening), listening
    fed, rounds = result.metrics["federated"], result.metrics["rounds"]
    assert fed["rounds_completed"] == 2 and [r["round"] for r in rounds] == [1, 2]
    assert all(len(r["clients"]) == 2 and r["eval_loss"] > 0 and not r["refused"] for r in rounds)
    assert fed["updates_refused"] == 0 and all(
        0 < c["update_norm"] < r["max_update_norm"] for r in rounds for c in r["clients"]
    )
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


@pytest.mark.federated
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


@pytest.mark.federated
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


@pytest.mark.federated
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


@pytest.mark.federated
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


def _tls_files(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and two sites' EC key pairs
    (OpenSSH format, as `ssh-keygen -t ecdsa -b 384` writes them)."""
    import datetime
    import ipaddress as ip

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now, pem = datetime.datetime.now(datetime.UTC), serialization.Encoding.PEM
    ca_key, key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])

    def certificate(subject: str, public: object, extension: object, critical: bool) -> bytes:
        built = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                 .issuer_name(ca_name).public_key(public).serial_number(x509.random_serial_number())
                 .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
                 .add_extension(extension, critical=critical).sign(ca_key, hashes.SHA256()))  # fmt: skip
        return built.public_bytes(pem)

    files = {"ca.pem": certificate("test CA", ca_key.public_key(), x509.BasicConstraints(ca=True, path_length=None), True),
             "server.pem": certificate("127.0.0.1", key.public_key(),
                                       x509.SubjectAlternativeName([x509.IPAddress(ip.ip_address("127.0.0.1"))]), False),
             "server.key": key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                             serialization.NoEncryption())}  # fmt: skip
    for site in ("site", "rogue"):
        site_key = ec.generate_private_key(ec.SECP384R1())
        files[f"{site}.key"] = site_key.private_bytes(
            pem, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        files[f"{site}.pub"] = site_key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


@pytest.mark.federated
def test_tls_with_supernode_auth_admits_the_registered_site_only(tmp_path: Path) -> None:
    """federated.superlink with TLS files: the SuperLink serves TLS with SuperNode
    authentication, the site with the registered key trains its own recipe, a SuperNode
    with another key is turned away by the SuperLink."""
    from ft_plugin.federated.deployment import _bin, free_port

    files, port = _tls_files(tmp_path), free_port()
    superlink = (f"  superlink:\n    address: 127.0.0.1:{port}\n    ssl_certfile: {files['server.pem']}\n"
                 f"    ssl_keyfile: {files['server.key']}\n    ssl_ca_certfile: {files['ca.pem']}\n"
                 f"    supernode_public_keys: [{files['site.pub']}]\n")  # fmt: skip
    extra = ("val_set_size: 4\nfederated:\n  num_clients: 1\n  rounds: 1\n  local_steps: 1\n"
             "  min_clients: 1\n" + superlink)  # fmt: skip
    server_recipe = tmp_path / "server.yaml"
    server_recipe.write_text(tiny_recipe(tmp_path, "lora", extra=extra).to_yaml(), encoding="utf-8")
    _, server = start_federated(server_recipe, tmp_path / "run")
    superlink_log, deadline = (
        tmp_path / "run" / "federated" / "superlink.log",
        time.monotonic() + 120,
    )
    while time.monotonic() < deadline and server.poll() is None:  # sites join once keys are in
        if superlink_log.is_file() and '/register-node HTTP/1.1" 200' in superlink_log.read_text():
            break
        time.sleep(0.5)
    sites = {}
    for name in ("rogue", "site"):  # the site's own recipe: lora.yaml, its rows: rows.jsonl
        command = [_bin("flower-supernode"), "--superlink", f"127.0.0.1:{port}", "--root-certificates",
                   str(files["ca.pem"]), "--auth-supernode-private-key", str(files[f"{name}.key"]), "--host", "127.0.0.1",
                   "--port", str(free_port()), "--max-retries", "60", "--node-config",
                   f"recipe='{tmp_path / 'lora.yaml'}' work='{tmp_path / name}'"]  # fmt: skip
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        with (tmp_path / f"{name}.log").open("wb") as log:
            sites[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, env={**os.environ, "PATH": path})  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while (
            server.poll() is None and sites["site"].poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert sites["site"].poll() is None, (tmp_path / "site.log").read_text()[-1500:]
        _, stderr = server.communicate(timeout=30)
        rogue_code = sites["rogue"].wait(timeout=60)
    finally:
        for process in (server, *sites.values()):  # SIGTERM first: the command stops its own
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(30)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert server.returncode == 0, stderr[-2000:]
    rounds = json.loads((tmp_path / "run" / "metrics.json").read_text())["rounds"]
    assert len(rounds[0]["clients"]) == 1 and not rounds[0]["refused"]
    assert rogue_code != 0
    logged = superlink_log.read_text()
    assert "No SuperNode found with the given public key" in logged
    assert "Option `--insecure` was set" not in logged
    assert flower_processes(tmp_path / "run") == []
