"""Flower's Deployment Engine: one ``flower-superlink`` and, on this machine, one
``flower-supernode`` per simulated site, each its own process group, every port on
127.0.0.1; the ft-plugin Flower app submitted with ``flwr run``.

Every process is started here and stopped here (SIGTERM to its group, then SIGKILL),
on success, failure or Ctrl-C: nothing Flower started outlives the command. Real sites
run ``flower-supernode`` on their own machines against a SuperLink with TLS and
SuperNode authentication instead (:mod:`.transport`, README).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from .layout import FederatedDir, round_line
from .transport import CLOSED_ENV, Transport

APP = Path(__file__).resolve().parent / "app"
CONNECTION = "ft-plugin"
NODE_ENV = "FT_PLUGIN_FEDERATED_NODE"  # set for a SuperNode and every process it starts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _toml_value(value: Any) -> str:
    return _toml_string(value) if isinstance(value, str) else str(int(value))


@dataclass
class Federation:
    """The processes of one federation, and how to reach its SuperLink."""

    folder: FederatedDir
    transport: Transport = field(default_factory=Transport)
    port: int = 0  # the SuperLink's, set when it starts
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    supernodes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        inherited = {k: v for k, v in os.environ.items() if k not in CLOSED_ENV}
        return {**inherited, "PATH": path, "FLWR_HOME": str(self.folder.home), "PYTHONUNBUFFERED": "1",
                "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}  # fmt: skip

    def _spawn(
        self, command: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                       env=env or self.env, start_new_session=True)  # fmt: skip
        self.processes.append(process)
        return process

    def start_superlink(self) -> None:
        """The SuperLink on the transport's host and port (a free loopback port by
        default): one port for the Fleet, Control and Runtime APIs (module docstring)."""
        self.port = self.transport.port or free_port()
        self.folder.home.mkdir(parents=True, exist_ok=True)
        (self.folder.home / "config.toml").write_text(
            self.transport.connection_toml(CONNECTION, self.port), encoding="utf-8"
        )
        command = [_bin("flower-superlink"), *self.transport.superlink_flags(), "--host", self.transport.host,
                   "--port", str(self.port), "--disable-runtime-dependency-installation"]  # fmt: skip
        self._spawn(command, self.folder.path / "superlink.log")
        self._wait_for_port(self.port, "flower-superlink", self.folder.path / "superlink.log")

    def register_supernodes(self) -> None:
        """Secure transport: only the sites whose public keys are given may join."""
        for key in self.transport.public_keys:
            done = subprocess.run([_bin("flwr"), "supernode", "register", str(key), CONNECTION, "--format", "json"],
                                  capture_output=True, text=True, env=self.env, timeout=60)  # fmt: skip
            if done.returncode != 0:
                raise UserError(f"federated.superlink.supernode_public_keys: {key} was not registered: "
                                f"{_last_error(done.stdout + done.stderr)}")  # fmt: skip

    def start_supernode(
        self, k: int, node_config: dict[str, Any], env: dict[str, str] | None = None
    ) -> None:
        """Site ``k`` on this machine, configured by its own ``node_config`` (its recipe,
        its data, its work folder): nothing of it comes from the server."""
        node = self.folder.node(k)
        node.mkdir(parents=True, exist_ok=True)
        config = node / "node.toml"
        config.write_text("".join(f"{key} = {_toml_value(value)}\n" for key, value in node_config.items()),
                          encoding="utf-8")  # fmt: skip
        command = [_bin("flower-supernode"), "--insecure", "--superlink", self.transport.address(self.port),
                   "--host", "127.0.0.1", "--port", str(free_port()), "--node-config", str(config)]  # fmt: skip
        own = {**self.env, **(env or {}), NODE_ENV: str(k)}  # the site a process works for
        self.supernodes[k] = self._spawn(command, node / "supernode.log", own)

    def run(self, run_config: dict[str, Any], timeout: float, rounds: int | None = None) -> None:
        """Submit the app and follow it to its end; a failed run raises with its last line.

        Each round the ServerApp completes is printed on stderr as it lands in
        ``rounds.json`` (``round i of rounds``: sites answered, mean loss)."""
        config = self.folder.path / "run-config.toml"
        config.write_text("".join(f"{k} = {_toml_string(v) if isinstance(v, str) else v}\n"
                                  for k, v in run_config.items()), encoding="utf-8")  # fmt: skip
        submitted = subprocess.run([_bin("flwr"), "run", str(APP), CONNECTION, "--run-config", str(config),
                                    "--format", "json"], capture_output=True, text=True, env=self.env,
                                   timeout=120)  # fmt: skip
        try:
            run_id = json.loads(submitted.stdout)["run-id"]
        except (ValueError, KeyError):
            raise UserError(
                f"flwr run failed: {(submitted.stdout + submitted.stderr).strip()[-500:]}"
            ) from None
        self._follow(run_id, timeout, rounds)

    def _follow(self, run_id: Any, timeout: float, rounds: int | None = None) -> None:
        deadline = time.monotonic() + timeout
        shown = len(self._rounds_done())  # a resumed run's earlier rounds were shown before
        while time.monotonic() < deadline:
            shown = self._show_rounds(shown, rounds)
            if self.processes[0].poll() is not None:
                raise UserError("federated run: the SuperLink stopped before the run finished; "
                                "the completed rounds are kept: rerun with --resume")  # fmt: skip
            listed = subprocess.run([_bin("flwr"), "ls", CONNECTION, "--run-id", str(run_id), "--format", "json"],
                                    capture_output=True, text=True, env=self.env, timeout=60)  # fmt: skip
            status = _run_status(listed.stdout)
            if status.startswith("finished"):
                self._show_rounds(shown, rounds)
                if status != "finished:completed":
                    log = subprocess.run([_bin("flwr"), "log", str(run_id), CONNECTION, "--show"],
                                         capture_output=True, text=True, env=self.env, timeout=60)  # fmt: skip
                    raise UserError(
                        f"federated run {status}: {_last_error(log.stdout + log.stderr)}"
                    )
                return
            time.sleep(2)
        raise UserError(f"federated run: not finished after {timeout:.0f} s")

    def _rounds_done(self) -> list[dict[str, Any]]:
        try:
            return self.folder.rounds()
        except (OSError, ValueError):  # progress only: the run's own checks report problems
            return []

    def _show_rounds(self, shown: int, rounds: int | None) -> int:
        """Print the rounds completed since the first ``shown``; returns how many are shown."""
        done = self._rounds_done()
        for record in done[shown:]:
            print(f"ft-plugin federated: {round_line(record, rounds)}", file=sys.stderr, flush=True)
        return max(shown, len(done))

    def _wait_for_port(self, port: int, what: str, log: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(_family(self.transport.connect_host())) as sock:
                if sock.connect_ex((self.transport.connect_host(), port)) == 0:
                    return
            if self.processes and self.processes[-1].poll() is not None:
                break
            time.sleep(0.3)
        raise UserError(f"{what} did not start: {_last_error(log.read_text(errors='replace'))}")

    def stop(self, grace: float = 15) -> None:
        """SIGTERM every process group, then SIGKILL what is left after ``grace`` seconds."""
        for process in self.processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            with suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)  # the group may hold SuperExec children
            process.wait()
        for pid in _started_by(self.folder.home):  # a Flower child in a session of its own
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _started_by(home: Path) -> list[int]:
    """Processes (Linux: /proc) whose environment names this federation's FLWR_HOME."""
    marker = f"FLWR_HOME={home}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int(proc.name) != os.getpid() and marker in (proc / "environ").read_bytes().split(
                b"\0"
            ):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _run_status(listing: str) -> str:
    try:
        runs = json.loads(listing).get("runs", [])
    except ValueError:
        return ""
    return str(runs[0].get("status", "")) if runs else ""


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][-400:]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@contextmanager
def local_federation(
    folder: FederatedDir, transport: Transport | None = None
) -> Iterator[Federation]:
    """A SuperLink (on a free port of 127.0.0.1 by default), stopped with everything it
    started; with a secure transport, the sites' keys registered."""
    federation = Federation(folder, transport or Transport())
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM unwinds to the stop
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        federation.start_superlink()
        federation.register_supernodes()
        yield federation
    finally:
        federation.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
