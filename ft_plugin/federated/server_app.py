"""The Flower ServerApp: FedAvg (or FFA-LoRA) over the adapter, recorded round by round.

It holds adapter weights only: the seeded starting adapter, the aggregate of each
round, and the clients' metrics. Every round sends the sites only the settings they take
from a server (:mod:`.site_recipe`), and every reply is screened (:mod:`.screening`:
keys, shapes, dtypes, finite values, update norm, bounded ``num-examples``) before it
can enter the average; what was left out, and why, is in the round's record. After every round it writes the global adapter to
``RUN_DIR/federated/global/`` and the round's numbers to ``rounds.json``, so a server
killed mid-run resumes from the last completed round. The run directory's final files
(``adapter_*``, ``metrics.json``, plots, card) are written by ``ft-plugin federated``.
"""

from __future__ import annotations

import json
import math
import time
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.supercore import log

from ft_plugin.utils.io import write_text_atomic

from . import screening, weights
from .layout import FederatedDir, round_line
from .site_recipe import SITE_REFUSED, server_settings

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
    """FedAvg that sends each round's settings (:func:`.site_recipe.server_settings`),
    records what each site replied, and merges FFA-LoRA's B-only replies into the global
    adapter (A stays as sent). The replies it averages were screened first
    (:class:`ScreenedStrategy`)."""

    def __init__(self, folder: FederatedDir, recipe: Any, done: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.folder, self.recipe, self.settings, self.done = folder, recipe, recipe.federated, done
        self.global_state: dict[str, Any] = {}
        self.current: dict[str, Any] = {}
        self.expected: dict[str, np.ndarray] = {}  # what a train reply must hold, as sent
        self.bounds = screening.Bounds(max_examples=1, max_update_norm=0.0)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Any:
        index = self.done + server_round
        lr = round_learning_rate(
            self.recipe.learning_rate, self.settings.lr_final, index, self.settings.rounds
        )
        config = ConfigRecord({**dict(config), "round": index, "strategy": self.settings.strategy,
                               "settings": json.dumps(server_settings(self.recipe, lr))})  # fmt: skip
        messages = list(super().configure_train(server_round, arrays, config, grid))
        sent = {key: arrays[key].numpy() for key in arrays}
        self.expected = {
            k: v for k, v in sent.items() if weights.travels(k, self.settings.strategy)
        }
        self.bounds = screening.round_bounds(self.recipe, lr, self.expected)
        self.current = {"round": index, "learning_rate": lr, "clients": [], "refused": [],
                        "started": time.time(), "bytes_sent": weights.payload_bytes(sent) * len(messages),
                        "bytes_received": 0, "max_examples": self.bounds.max_examples,
                        "max_update_norm": round(self.bounds.max_update_norm, 6)}  # fmt: skip
        return messages

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Any:
        settings = server_settings(
            self.recipe, self.current.get("learning_rate", self.recipe.learning_rate)
        )
        config = ConfigRecord({**dict(config), "round": self.done + server_round,
                               "strategy": self.settings.strategy, "settings": json.dumps(settings)})  # fmt: skip
        return super().configure_evaluate(server_round, arrays, config, grid)

    def screen_train(self, replies: list[Message]) -> list[Message]:
        """The replies that pass :func:`.screening.screen`, rebuilt with only what FedAvg
        reads (the arrays in the server's order, the bounded weight, the loss); every
        other reply is recorded as refused. Fewer answers than ``min_clients`` (sites
        that replied at all, refusing or not) fail the run as before."""
        accepted, answered = [], 0
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                answered += self._errored(reply, "train")
                continue
            answered += 1
            try:
                arrays, metrics = _train_records(reply)
                self.current["bytes_received"] += weights.payload_bytes(arrays)
                ok = screening.screen(arrays, metrics, self.expected, self.bounds)
            except screening.ReplyRefused as problem:
                self._refused(node, "server", str(problem), "train")
                continue
            reply.content = RecordDict({
                "arrays": ArrayRecord({k: Array(v) for k, v in ok.arrays.items()}),
                "metrics": MetricRecord({"num-examples": ok.weight, "train_loss": ok.train_loss}),
            })  # fmt: skip
            client = {"node": node, "num-examples": ok.weight, "train_loss": ok.train_loss,
                      "bytes": weights.payload_bytes(ok.arrays), "update_norm": round(ok.norm, 6)}  # fmt: skip
            self.current["clients"].append(client | ({"claimed": ok.claimed} if ok.clamped else {}))
            accepted.append(reply)
        if answered < self.settings.min_clients:
            raise RuntimeError(f"round {self.current['round']}: {answered} client replies, fewer than "
                               f"federated.min_clients {self.settings.min_clients}")  # fmt: skip
        return accepted

    def screen_evaluate(self, replies: list[Message]) -> list[Message]:
        """Evaluation replies with exactly ``num-examples`` (≥ 1) and a finite
        ``eval_loss``; a site without held-out rows (0) is left out quietly."""
        kept = []
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                self._errored(reply, "evaluate")
                continue
            try:
                count, loss = screening.evaluate_metrics(_only_metrics(reply))
            except screening.ReplyRefused as problem:
                self._refused(node, "server", str(problem), "evaluate")
                continue
            if count:
                reply.content = RecordDict(
                    {"metrics": MetricRecord({"num-examples": count, "eval_loss": loss})}
                )
                kept.append(reply)
        return kept

    def _errored(self, reply: Message, stage: str) -> bool:
        """Record an error reply: a site's refusal (True), or a failure (a crash, a lost
        node: recorded under ``failed``, as Flower logs it)."""
        node, reason = reply.metadata.src_node_id, str(reply.error.reason or "no reason")[-500:]
        if reply.error.code == SITE_REFUSED:
            self._refused(node, "site", reason, stage)
            return True
        self.current.setdefault("failed", []).append(
            {"node": node, "stage": stage, "reason": reason}
        )
        return False

    def _refused(self, node: int, by: str, reason: str, stage: str) -> None:
        reason = reason[:500]  # a peer chooses key names and error texts: keep records small
        log(WARNING, "round %s: %s reply of node %s left out (%s): %s",
            self.current.get("round"), stage, node, by, reason)  # fmt: skip
        self.current.setdefault("refused", []).append(
            {"node": node, "stage": stage, "by": by, "reason": reason}
        )

    def aggregate_train(
        self, server_round: int, replies: Any
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
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
        done = {**self.current, "seconds": round(time.time() - self.current["started"], 2)}
        self.folder.save_round(arrays.to_torch_state_dict(), done)
        log(INFO, "%s", round_line(done, self.settings.rounds))  # the command prints it too
        self.current = {}


class ScreenedStrategy(Strategy):
    """The outermost strategy: every reply is screened by :class:`RecordedFedAvg` before
    the inner strategy (a DP wrapper, or that FedAvg itself) sees it, so that no peer
    can fail a round's arithmetic or own its average. With fewer accepted updates than
    ``min_clients`` the round keeps the previous global adapter."""

    def __init__(self, inner: Strategy, recorded: RecordedFedAvg) -> None:
        self.inner, self.recorded = inner, recorded

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Any:
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Any
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted = self.recorded.screen_train(list(replies))
        if len(accepted) < self.recorded.settings.min_clients:
            log(WARNING, "round %s: %d updates accepted, fewer than federated.min_clients %d: "
                "the global adapter stays as it was", self.recorded.current.get("round"),
                len(accepted), self.recorded.settings.min_clients)  # fmt: skip
            self.recorded.current["kept_previous"] = True
            return None, None
        return self.inner.aggregate_train(server_round, accepted)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Any:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Any) -> MetricRecord | None:
        kept = self.recorded.screen_evaluate(list(replies))
        return self.inner.aggregate_evaluate(server_round, kept) if kept else None

    def summary(self) -> None:
        self.inner.summary()


def _train_records(reply: Message) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A train reply's one ArrayRecord (decoded: numpy, never pickle) and one MetricRecord."""
    content = reply.content
    if len(content.array_records) != 1 or len(content.metric_records) != 1:
        raise screening.ReplyRefused("a train reply holds one ArrayRecord and one MetricRecord")
    record = next(iter(content.array_records.values()))
    try:
        arrays = {key: record[key].numpy() for key in record}
    except (TypeError, ValueError) as exc:
        raise screening.ReplyRefused(f"arrays that do not decode: {exc}") from None
    return arrays, dict(next(iter(content.metric_records.values())))


def _only_metrics(reply: Message) -> dict[str, Any]:
    content = reply.content
    if len(content.metric_records) != 1 or len(content.array_records):
        raise screening.ReplyRefused("an evaluate reply holds one MetricRecord and nothing else")
    return dict(next(iter(content.metric_records.values())))


def _strategy(folder: FederatedDir, loaded: Any, done: int) -> RecordedFedAvg:
    settings = loaded.recipe.federated
    strategy = RecordedFedAvg(
        folder, loaded.recipe, done,
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

    ScreenedStrategy(_private(strategy, settings), strategy).start(
        grid=grid, initial_arrays=ArrayRecord(start), num_rounds=remaining,
        timeout=settings.round_timeout, evaluate_fn=after_round,
    )  # fmt: skip
    write_text_atomic(folder.finished_path, json.dumps({"rounds": settings.rounds}) + "\n")
