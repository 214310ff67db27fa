"""The federated part of a run directory (``RUN_DIR/federated/``)::

    clients/client-K.jsonl   the rows dealt to client K (one file's simulated split)
    nodes/K/                 client K's scratch folder and its SuperNode's log
    global.safetensors       the global adapter after the last completed round
    rounds.json              one entry per completed round (the resume point)
    finished.json            written by the ServerApp when every round is done
    superlink.log, flwr/     the SuperLink's log and Flower's home (config, apps)

Example:
    >>> import tempfile; folder = FederatedDir(Path(tempfile.mkdtemp()))
    >>> folder.resume_point()
    (0, None)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ft_plugin.utils.io import write_text_atomic

FEDERATED = "federated"


def round_line(record: dict[str, Any], rounds: int | None) -> str:
    """One completed round (an entry of ``rounds.json``) as a person reads it: the mean
    train loss is across the sites whose update was averaged, as in ``metrics.json``.

    Example:
        >>> round_line({"round": 2, "clients": [{"train_loss": 1.0}, {"train_loss": 2.0}],
        ...             "refused": [{"node": 7}], "eval_loss": 1.1, "seconds": 4.2}, 3)
        'round 2 of 3: 2 sites answered, 1 left out, mean train loss 1.5000, held-out loss 1.1000 (4 s)'
    """
    clients = record.get("clients", [])
    sites = f"{len(clients)} site{'' if len(clients) == 1 else 's'} answered"
    of = f" of {rounds}" if rounds else ""
    parts = [f"round {record['round']}{of}: {sites}"]
    if left_out := len(record.get("refused", [])) + len(record.get("failed", [])):
        parts.append(f"{left_out} left out")
    if losses := [c["train_loss"] for c in clients if "train_loss" in c]:
        parts.append(f"mean train loss {sum(losses) / len(losses):.4f}")
    if record.get("kept_previous"):
        parts.append("the global adapter stays as it was")
    if record.get("eval_loss") is not None:
        parts.append(f"held-out loss {record['eval_loss']:.4f}")
    seconds = f" ({record['seconds']:.0f} s)" if "seconds" in record else ""
    return ", ".join(parts) + seconds


class FederatedDir:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / FEDERATED

    @property
    def clients(self) -> Path:
        return self.path / "clients"

    def client_file(self, k: int) -> Path:
        return self.clients / f"client-{k}.jsonl"

    def node(self, k: int) -> Path:
        return self.path / "nodes" / str(k)

    @property
    def global_path(self) -> Path:
        return self.path / "global.safetensors"

    @property
    def rounds_path(self) -> Path:
        return self.path / "rounds.json"

    @property
    def finished_path(self) -> Path:
        return self.path / "finished.json"

    @property
    def home(self) -> Path:
        return self.path / "flwr"

    def rounds(self) -> list[dict[str, Any]]:
        if not self.rounds_path.is_file():
            return []
        return json.loads(self.rounds_path.read_text(encoding="utf-8"))

    def save_round(self, state: dict[str, Any], record: dict[str, Any]) -> None:
        """The global adapter first, then the round's record: a record on disk always has
        its weights."""
        from safetensors.torch import save_file

        self.path.mkdir(parents=True, exist_ok=True)
        staging = self.global_path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(staging))
        staging.replace(self.global_path)
        rounds = [r for r in self.rounds() if r["round"] < record["round"]] + [record]
        write_text_atomic(self.rounds_path, json.dumps(rounds, indent=1) + "\n")

    def resume_point(self) -> tuple[int, dict[str, Any] | None]:
        """(rounds completed, the global adapter after them), or (0, None) for a fresh run."""
        rounds = self.rounds()
        if not rounds or not self.global_path.is_file():
            return 0, None
        from safetensors.torch import load_file

        return int(rounds[-1]["round"]), load_file(str(self.global_path))
