"""The Flower ServerApp: FedAvg (or FFA-LoRA) over the adapter, recorded round by round.

It holds adapter weights only: the seeded starting adapter, the aggregate of each
round, and the clients' metrics. After every round it writes the global adapter to
``RUN_DIR/federated/global/`` and the round's numbers to ``rounds.json``, so a server
killed mid-run resumes from the last completed round. The run directory's final files
(``adapter_*``, ``metrics.json``, plots, card) are written by ``ft-plugin federated``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
)

from ft_plugin.io import write_text_atomic

from . import weights
from .layout import FederatedDir

app = ServerApp()


def round_learning_rate(first: float, final: float | None, index: int, rounds: int) -> float:
    """Cosine annealing across rounds (FlowerTune's schedule): ``first`` in round 1 down
    to ``final`` in the last; constant without ``final``.

    Example:
        >>> [round(round_learning_rate(1e-4, 1e-6, i, 3), 7) for i in (1, 2, 3)]
        [0.0001, 5.05e-05, 1e-06]
    """
    if final is None or rounds <= 1:
        return first
    progress = (index - 1) / (rounds - 1)
    return final + 0.5 * (first - final) * (1 + math.cos(math.pi * progress))


class RecordedFedAvg(FedAvg):
    """FedAvg that sends each round's learning rate, keeps what each client reported, and
    merges FFA-LoRA's B-only replies into the global adapter (A stays as sent)."""

    def __init__(
        self, folder: FederatedDir, settings: Any, learning_rate: float, done: int, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.folder, self.settings, self.learning_rate, self.done = (
            folder,
            settings,
            learning_rate,
            done,
        )
        self.global_state: dict[str, Any] = {}
        self.current: dict[str, Any] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Any:
        index = self.done + server_round
        lr = round_learning_rate(
            self.learning_rate, self.settings.lr_final, index, self.settings.rounds
        )
        config = ConfigRecord({**dict(config), "lr": lr, "round": index})
        messages = list(super().configure_train(server_round, arrays, config, grid))
        sent = weights.payload_bytes(arrays.to_torch_state_dict())
        self.current = {"round": index, "learning_rate": lr, "clients": [], "started": time.time(),
                        "bytes_sent": sent * len(messages)}  # fmt: skip
        return messages

    def aggregate_train(
        self, server_round: int, replies: Any
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        for reply in replies:
            if reply.has_content():
                metrics = dict(reply.content["metrics"])
                self.current["clients"].append({"node": reply.metadata.src_node_id, **metrics})
        ok = len(self.current["clients"])
        if ok < self.settings.min_clients:
            raise RuntimeError(f"round {self.current['round']}: {ok} client replies, fewer than "
                               f"federated.min_clients {self.settings.min_clients}")  # fmt: skip
        self.current["bytes_received"] = sum(c.get("bytes", 0) for c in self.current["clients"])
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is not None:
            self.global_state = {**self.global_state, **arrays.to_torch_state_dict()}
            arrays = ArrayRecord(self.global_state)
        return arrays, metrics

    def aggregate_evaluate(self, server_round: int, replies: Any) -> MetricRecord | None:
        aggregated = super().aggregate_evaluate(server_round, replies)
        if aggregated is not None and "eval_loss" in aggregated:
            self.current["eval_loss"] = float(aggregated["eval_loss"])
        return aggregated

    def record(self, arrays: ArrayRecord) -> None:
        """After a round: the global adapter and the round's numbers, both on disk."""
        if not self.current:
            return
        self.folder.save_round(
            arrays.to_torch_state_dict(),
            {**self.current, "seconds": round(time.time() - self.current["started"], 2)},
        )
        self.current = {}


def _strategy(folder: FederatedDir, loaded: Any, done: int) -> RecordedFedAvg:
    settings = loaded.recipe.federated
    strategy = RecordedFedAvg(
        folder, settings, loaded.recipe.learning_rate, done,
        fraction_train=settings.fraction_train, fraction_evaluate=1.0,
        min_train_nodes=settings.min_clients, min_evaluate_nodes=settings.min_clients,
        min_available_nodes=settings.min_clients,
    )  # fmt: skip
    return strategy


def _private(strategy: RecordedFedAvg, settings: Any) -> Any:
    if settings.dp is None:
        return strategy
    wrapper = (DifferentialPrivacyClientSideFixedClipping if settings.dp.side == "client"
               else DifferentialPrivacyServerSideFixedClipping)  # fmt: skip
    sampled = max(settings.min_clients, int(settings.num_clients * settings.fraction_train))
    return wrapper(strategy, settings.dp.noise_multiplier, settings.dp.clipping_norm, sampled)


def _wait_for_clients(grid: Grid, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < count and time.monotonic() < deadline:
        time.sleep(0.5)


@app.main()
def main(grid: Grid, context: Context) -> None:
    from ft_plugin.config import load_recipe

    loaded = load_recipe(str(context.run_config["recipe"]))
    settings = loaded.recipe.federated
    folder = FederatedDir(Path(str(context.run_config["run-dir"])))
    done, start = folder.resume_point()
    if start is None:
        model, _ = weights.seeded_model(loaded)
        start = weights.travelling(weights.adapter_state(model), "fedavg")
    strategy = _strategy(folder, loaded, done)
    strategy.global_state = dict(start)
    remaining = settings.rounds - done
    if remaining <= 0:
        return
    _wait_for_clients(grid, settings.num_clients, timeout=120)

    def after_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round > 0:
            strategy.record(arrays)
        return None

    _private(strategy, settings).start(
        grid=grid, initial_arrays=ArrayRecord(start), num_rounds=remaining,
        timeout=settings.round_timeout, evaluate_fn=after_round,
    )  # fmt: skip
    write_text_atomic(folder.finished_path, json.dumps({"rounds": settings.rounds}) + "\n")
