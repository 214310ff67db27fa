"""Federated training where neither the server nor a peer can harm a site (issue 29, audit
item 6): a site keeps its own data, model and code keys; the server bounds example counts
and update norms and refuses odd keys, shapes, dtypes and NaNs; a non-loopback SuperLink
needs TLS and SuperNode authentication. Fast: real Flower messages and strategies, no
Flower processes (tests/test_federated.py runs those)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import cli, require

require("flwr", "the federated extra (make setup installs .[all])")
# ruff: noqa: E402  (flwr and the modules on it are imported once it is known to be there)

from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping
from flwr.supercore.task_identity import TaskIdentity

from ft_plugin.config import Recipe, load_recipe
from ft_plugin.errors import UserError
from ft_plugin.federated import client_app, screening
from ft_plugin.federated.layout import FederatedDir
from ft_plugin.federated.screening import Bounds, ReplyRefused
from ft_plugin.federated.server_app import RecordedFedAvg, ScreenedStrategy
from ft_plugin.federated.site_recipe import (
    SERVER_KEYS,
    SITE_REFUSED,
    SiteRefusal,
    check_server_config,
    load_site_recipe,
    server_settings,
)
from ft_plugin.federated.transport import Transport, is_loopback, transport_for

# Keys that run code, read or write the site's disk, reach the network, choose the model
# or publish: a site takes each of them from its own recipe only.
SITE_KEYS = ("trust_remote_code", "base_model", "base_model_revision", "tokenizer_config",
             "datasets", "test_datasets", "replay", "ewc", "output_dir", "lora_model_dir",
             "hub_model_id", "hub", "chat_template", "special_tokens", "rope_scaling",
             "load_in_4bit", "torch_threads", "report_to", "federated", "stages", "adapters")  # fmt: skip
HOSTILE = {"trust_remote_code": True, "base_model": "attacker/model-with-code",
           "datasets": [{"path": "/etc/passwd", "type": "completion"}],
           "test_datasets": [{"path": "/home/site/patients.jsonl", "type": "alpaca"}],
           "replay": {"datasets": [{"path": "https://evil.example/x.csv"}]},
           "output_dir": "/tmp/elsewhere", "lora_model_dir": "hf://attacker/adapter",
           "ewc": {"lambda": 1.0, "previous": "hf://attacker/run"},
           "hub_model_id": "attacker/exfiltrated", "hub": {"create_pr": True}}  # fmt: skip


@pytest.fixture(autouse=True)
def _flower_task() -> Any:
    """A process running a Flower task has these set; messages are built from them."""
    before = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = before


def _train_message(settings: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                   **config: Any) -> Message:  # fmt: skip
    record = ConfigRecord({"server-round": 1, "round": 1, "strategy": "fedavg",
                           "settings": json.dumps(settings), **config})  # fmt: skip
    arrays = arrays or {"x.lora_B.weight": np.zeros((2, 2), np.float32)}
    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                          "config": record})  # fmt: skip
    return Message(content, dst_node_id=7, message_type="train")


# --------------------------------------------------------------------------- the site


def test_the_allowlist_names_recipe_keys_and_none_a_site_keeps() -> None:
    assert set(SERVER_KEYS) <= set(Recipe.model_fields)
    assert not set(SERVER_KEYS) & set(SITE_KEYS)
    sent = server_settings(load_recipe("medical-lora", {"trust_remote_code": True}).recipe, 1e-4)
    assert set(sent) == set(SERVER_KEYS) and sent["learning_rate"] == 1e-4


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_a_site_refuses_a_server_that_sets_a_key_it_keeps(tmp_path: Path, key: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The refusal is the reply (error code SITE_REFUSED, its reason) and one line in the
    site's log; nothing is loaded, trained or written besides that line."""
    work = tmp_path / "work"
    context = Context(run_id=1, node_id=7, node_config={"recipe": "medical-lora", "work": str(work)},
                      state=RecordDict(), run_config={"recipe": "/server/recipe.yaml"})  # fmt: skip
    reply = client_app.app(
        message=_train_message({"lora_r": 8, key: HOSTILE[key]}), context=context
    )
    assert reply.has_error() and reply.error.code == SITE_REFUSED
    assert f"the server set {key}," in str(reply.error.reason)
    logged = (work / "refused.log").read_text().splitlines()
    assert len(logged) == 1 and f"the server set {key}," in logged[0]
    assert capsys.readouterr().err.count("ft-plugin site refused") == 1
    assert sorted(p.name for p in work.iterdir()) == ["refused.log"]  # no round folder


def test_a_site_refuses_odd_message_entries_and_values() -> None:
    with pytest.raises(SiteRefusal, match="has recipe, which a site does not take"):
        check_server_config({"round": 1, "recipe": "hf://attacker/recipe.yaml"})
    with pytest.raises(SiteRefusal, match="strategy 'evil'"):
        check_server_config({"round": 1, "strategy": "evil"})
    with pytest.raises(SiteRefusal, match="not a JSON object"):
        check_server_config({"settings": "[1, 2]"})
    with pytest.raises(SiteRefusal, match="round '../x' is not a round number"):
        check_server_config({"round": "../x"})
    with pytest.raises(SiteRefusal, match="clipping_norm nan is not a positive number"):
        check_server_config({"clipping_norm": float("nan")})
    node = {"recipe": "medical-lora"}
    with pytest.raises(SiteRefusal, match="lora_r: input should be greater than or equal to 1"):
        load_site_recipe(node, {"lora_r": -1})
    with pytest.raises(SiteRefusal, match="a site trains PEFT adapters only"):
        load_site_recipe(node, {"adapter": "full"})
    with pytest.raises(SiteRefusal, match="names no recipe"):
        load_site_recipe({"work": "/tmp/w"}, {"lora_r": 8})


def test_a_site_trains_its_own_recipe_with_the_servers_hyper_parameters(tmp_path: Path) -> None:
    """The server's recipe names another model, remote code, other data; the site's own
    values stand, the server's learning rate, steps and LoRA shape apply."""
    own = tmp_path / "own.jsonl"
    own.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    site = tmp_path / "site.yaml"
    site.write_text(f"base_model: embedded:smollm2-135m-instruct\ndatasets:\n  - path: {own}\n"
                    "    type: alpaca\nlora_r: 4\nlearning_rate: 0.1\n", encoding="utf-8")  # fmt: skip
    server = load_recipe("medical-lora", {"trust_remote_code": True, "base_model": "attacker/model",
                                          "lora_r": 32, "federated.local_steps": 3})  # fmt: skip
    sent = check_server_config({"settings": json.dumps(server_settings(server.recipe, 5e-5))})
    recipe = load_site_recipe({"recipe": str(site)}, sent).recipe
    assert recipe.trust_remote_code is False and recipe.base_model.startswith("embedded:")
    assert [d.path for d in recipe.datasets] == [str(own)]
    assert (recipe.learning_rate, recipe.max_steps, recipe.lora_r) == (5e-5, 3, 32)
    assert recipe.report_to == ["none"] and recipe.resume is False


def test_a_site_recipe_with_axolotls_per_epoch_counts_builds(tmp_path: Path) -> None:
    """Axolotl's saves_per_epoch / evals_per_epoch (and strategies) in a site's own recipe
    give way to the site's fixed steps (no checkpoints or evaluation inside a round) instead
    of contradicting them; the server's warmup_ratio applies (with its warmup_steps, so the
    site's own warmup_steps does not contradict it)."""
    own = tmp_path / "own.jsonl"
    own.write_text('{"instruction": "q", "output": "a"}\n' * 8, encoding="utf-8")
    site = tmp_path / "site.yaml"
    site.write_text(f"base_model: embedded:smollm2-135m-instruct\ndatasets:\n  - path: {own}\n"
                    "    type: alpaca\nval_set_size: 2\nsaves_per_epoch: 1\nevals_per_epoch: 4\n"
                    "save_strategy: steps\neval_strategy: steps\nwarmup_steps: 10\n",
                    encoding="utf-8")  # fmt: skip
    server = load_recipe("medical-lora", {"warmup_steps": 0, "warmup_ratio": 0.1,
                                          "federated.local_steps": 3})  # fmt: skip
    sent = check_server_config({"settings": json.dumps(server_settings(server.recipe, 5e-5))})
    assert sent["warmup_ratio"] == 0.1
    recipe = load_site_recipe({"recipe": str(site)}, sent).recipe
    assert (recipe.saves_per_epoch, recipe.evals_per_epoch) == (None, None)
    assert (recipe.save_steps, recipe.eval_steps) == (1000000, 1000000)
    assert (recipe.warmup_ratio, recipe.warmup_steps, recipe.max_steps) == (0.1, 0, 3)


# --------------------------------------------------------------------------- the server


class _Grid:
    """The part of Flower's Grid a strategy's configure step reads: the connected nodes."""

    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return self.nodes


def _server(tmp_path: Path, settings: dict[str, object] | None = None) -> tuple[RecordedFedAvg, dict[str, np.ndarray], list[Message]]:  # fmt: skip
    """A server's strategy after configure_train for round 1, the global arrays it sent,
    and the messages (one per node)."""
    loaded = load_recipe("medical-lora", {"federated.num_clients": 3, "federated.local_steps": 2,
                                          "micro_batch_size": 2, **(settings or {})})  # fmt: skip
    recorded = RecordedFedAvg(FederatedDir(tmp_path), loaded.recipe, 0, min_train_nodes=1,
                              min_available_nodes=1, fraction_train=1.0)  # fmt: skip
    rng = np.random.default_rng(0)
    sent = {"m.lora_A.weight": rng.normal(size=(4, 8)).astype(np.float32),
            "m.lora_B.weight": np.zeros((8, 4), np.float32)}  # fmt: skip
    arrays = ArrayRecord({k: Array(v) for k, v in sent.items()})
    messages = list(recorded.configure_train(1, arrays, ConfigRecord(), _Grid([1, 2, 3])))
    return recorded, sent, messages


def _reply(to: Message, arrays: dict[str, np.ndarray], examples: Any = 4, **metrics: Any) -> Message:  # fmt: skip
    values = {"num-examples": examples, "train_loss": 1.0, **metrics}
    return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                               "metrics": MetricRecord(values)}), reply_to=to)  # fmt: skip


def _moved(sent: dict[str, np.ndarray], by: float) -> dict[str, np.ndarray]:
    return {k: (v + np.float32(by)).astype(np.float32) for k, v in sent.items()}


def test_the_server_sends_only_allowed_settings_and_plans_its_bounds(tmp_path: Path) -> None:
    recorded, sent, messages = _server(tmp_path, {"trust_remote_code": True})
    config = messages[0].content["config"]
    assert set(config) <= {"server-round", "round", "strategy", "settings"}
    assert set(json.loads(str(config["settings"]))) == set(SERVER_KEYS)
    assert recorded.bounds.max_examples == 2 * 1 * 2  # micro_batch × accumulation × local_steps
    params = sum(v.size for v in sent.values())
    lr = load_recipe("medical-lora").recipe.learning_rate
    assert recorded.bounds.max_update_norm == pytest.approx(4.0 * lr * 2 * math.sqrt(params))


def test_a_node_claiming_10_to_the_12_examples_does_not_own_the_average(tmp_path: Path) -> None:
    recorded, sent, messages = _server(tmp_path)
    honest = [_reply(m, _moved(sent, +0.001)) for m in messages[:2]]
    liar = _reply(messages[2], _moved(sent, -0.001), examples=10**12)
    arrays, _ = ScreenedStrategy(recorded, recorded).aggregate_train(1, [*honest, liar])
    got = arrays.to_numpy_ndarrays()
    expected = [v + np.float32(0.001 / 3) for v in sent.values()]  # equal weights: 4, 4, 4
    for value, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(value, want, atol=1e-6)
    clients = recorded.current["clients"]
    assert [c["num-examples"] for c in clients] == [4, 4, 4]
    assert clients[2]["claimed"] == 10**12 and "claimed" not in clients[0]


BAD_UPDATES = {
    "NaN": (lambda s: {**s, "m.lora_B.weight": np.full((8, 4), np.nan, np.float32)}, "NaN or infinite"),
    "Inf": (lambda s: {**s, "m.lora_A.weight": np.full((4, 8), np.inf, np.float32)}, "NaN or infinite"),
    "extra key": (lambda s: {**s, "evil.weight": np.zeros(2, np.float32)}, "unexpected key 'evil.weight'"),
    "missing key": (lambda s: {"m.lora_A.weight": s["m.lora_A.weight"]}, "missing key 'm.lora_B.weight'"),
    "wrong shape": (lambda s: {**s, "m.lora_B.weight": np.zeros((4, 8), np.float32)}, r"shape \(4, 8\)"),
    "wrong dtype": (lambda s: {**s, "m.lora_B.weight": np.zeros((8, 4), np.float64)}, "dtype float64"),
    "huge norm": (lambda s: _moved(s, 100.0), "over federated.max_update_norm"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_UPDATES))
def test_each_bad_update_is_refused(name: str) -> None:
    rng = np.random.default_rng(1)
    sent = {"m.lora_A.weight": rng.normal(size=(4, 8)).astype(np.float32),
            "m.lora_B.weight": np.zeros((8, 4), np.float32)}  # fmt: skip
    make, reason = BAD_UPDATES[name]
    with pytest.raises(ReplyRefused, match=reason):
        screening.update_norm(make(sent), sent, max_norm=1.0)
    assert screening.update_norm(_moved(sent, 0.01), sent, max_norm=1.0) == pytest.approx(
        0.01 * math.sqrt(64), rel=1e-3
    )


@pytest.mark.parametrize("claimed", [0, -5, float("nan"), float("inf"), True, "12", [4]], ids=repr)
def test_a_count_that_is_not_a_count_is_refused(claimed: Any) -> None:
    with pytest.raises(ReplyRefused, match="num-examples"):
        screening.example_weight(claimed, bound=8)
    assert screening.example_weight(3, bound=8) == (3, False)


def test_refused_updates_are_left_out_with_their_reason_and_all_refused_keeps_the_weights(
    tmp_path: Path,
) -> None:
    recorded, sent, messages = _server(tmp_path)
    strategy = ScreenedStrategy(recorded, recorded)
    replies = [
        _reply(messages[0], _moved(sent, 0.0005)),
        _reply(messages[1], {**sent, "m.lora_B.weight": np.full((8, 4), np.nan, np.float32)}),
        _reply(messages[2], _moved(sent, 0.001), extra_metric=1.0),  # would fail FedAvg's checks
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    for value, want in zip(arrays.to_numpy_ndarrays(), _moved(sent, 0.0005).values(), strict=True):
        np.testing.assert_allclose(value, want, atol=1e-7)  # the one good update, alone
    refused = recorded.current["refused"]
    nodes = [m.metadata.dst_node_id for m in messages]
    assert [(r["node"], r["by"]) for r in refused] == [(nodes[1], "server"), (nodes[2], "server")]
    assert "NaN" in refused[0]["reason"] and "extra_metric" in refused[1]["reason"]
    # a round where every update is refused (one by its site) keeps the previous adapter
    recorded, sent, messages = _server(tmp_path)
    site_refusal = Message(Error(SITE_REFUSED, "refused by the site: ..."), reply_to=messages[2])  # fmt: skip
    bad = [_reply(m, _moved(sent, 100.0)) for m in messages[:2]] + [site_refusal]
    assert ScreenedStrategy(recorded, recorded).aggregate_train(1, bad) == (None, None)
    assert recorded.current["kept_previous"] is True
    assert [r["by"] for r in recorded.current["refused"]] == ["server", "server", "site"]


def test_screening_comes_before_server_side_dp_clipping(tmp_path: Path) -> None:
    """Flower's DP wrapper pairs arrays by position; a reply with its keys reordered or a
    wrong shape must neither crash the round nor be clipped against the wrong tensor."""
    recorded, sent, messages = _server(tmp_path)
    dp = DifferentialPrivacyServerSideFixedClipping(recorded, 0.0, 10.0, 3)
    dp.current_arrays = ArrayRecord({k: Array(v) for k, v in sent.items()})
    reordered = dict(reversed(list(_moved(sent, 0.001).items())))
    replies = [_reply(messages[0], reordered), _reply(messages[1], _moved(sent, 0.001)),
               _reply(messages[2], {**sent, "m.lora_A.weight": np.zeros((8, 4), np.float32)})]  # fmt: skip
    arrays, _ = ScreenedStrategy(dp, recorded).aggregate_train(1, replies)
    for value, want in zip(arrays.to_numpy_ndarrays(), _moved(sent, 0.001).values(), strict=True):
        np.testing.assert_allclose(value, want, atol=1e-6)
    assert [r["node"] for r in recorded.current["refused"]] == [messages[2].metadata.dst_node_id]


def test_an_odd_evaluation_reply_is_left_out_not_fatal(tmp_path: Path) -> None:
    recorded, _, messages = _server(tmp_path)
    good = Message(RecordDict({"metrics": MetricRecord({"num-examples": 10, "eval_loss": 2.0})}),
                   reply_to=messages[0])  # fmt: skip
    odd = Message(RecordDict({"metrics": MetricRecord({"num-examples": 10, "eval_loss": 1.0,
                                                       "x": 1.0})}), reply_to=messages[1])  # fmt: skip
    nan = Message(RecordDict({"metrics": MetricRecord({"num-examples": 10, "eval_loss": float("nan")})}),
                  reply_to=messages[2])  # fmt: skip
    aggregated = ScreenedStrategy(recorded, recorded).aggregate_evaluate(1, [good, odd, nan])
    assert aggregated["eval_loss"] == pytest.approx(2.0)
    assert len(recorded.current["refused"]) == 2


@pytest.mark.parametrize("pattern", ["same sign", "alternating", "one spike then quiet", "noise"])
def test_the_default_norm_bound_admits_every_adam_update(pattern: str) -> None:
    """An honest site's update, whatever its gradients, is under the default bound: Adam
    moves a weight by about lr per step at most (module docstring of screening)."""
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64, 16))
    start = weight.detach().clone()
    optimizer = torch.optim.AdamW([weight], lr=1e-2, weight_decay=0.0)
    steps = 20
    for step in range(steps):
        grads = {"same sign": torch.ones(64, 16),
                 "alternating": torch.ones(64, 16) * (-1) ** step,
                 "one spike then quiet": torch.ones(64, 16) * (1e3 if step == 0 else 1e-3),
                 "noise": torch.randn(64, 16)}  # fmt: skip
        weight.grad = grads[pattern]
        optimizer.step()
    norm = float((weight.detach() - start).norm())
    bound = screening.default_update_norm(1e-2, steps, weight.numel())
    assert norm <= bound / 2, (norm, bound)  # within the margin, not just under it


def test_bounds_come_from_the_recipe_when_set(tmp_path: Path) -> None:
    recorded, _, _ = _server(
        tmp_path, {"federated.max_examples_per_round": 100, "federated.max_update_norm": 0.5}
    )
    assert recorded.bounds == Bounds(max_examples=100, max_update_norm=0.5)


# --------------------------------------------------------------------------- transport


def test_a_non_loopback_superlink_without_tls_and_keys_is_refused_in_one_line(tmp_path: Path) -> None:  # fmt: skip
    result = cli("federated", "medical-lora", "--set", "federated.num_clients=2",
                 "--set", "federated.superlink.address=0.0.0.0:9092",
                 "--output-dir", str(tmp_path / "run"), timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "0.0.0.0:9092 is not loopback" in line
    for key in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certfile", "supernode_public_keys"):
        assert key in line
    assert not (tmp_path / "run").exists()


def test_tls_files_given_in_part_are_named_and_missing_files_refused(tmp_path: Path) -> None:
    cert = tmp_path / "server.pem"
    cert.write_text("x")
    loaded = load_recipe("medical-lora", {"federated.superlink.address": "10.1.2.3:9092",
                                          "federated.superlink.ssl_certfile": str(cert)})  # fmt: skip
    with pytest.raises(
        UserError,
        match=r"give federated.superlink.ssl_keyfile, ssl_ca_certfile, supernode_public_keys \(",
    ):
        transport_for(loaded.recipe.federated)
    loaded = load_recipe("medical-lora", {
        "federated.superlink.address": "10.1.2.3:9092", "federated.superlink.ssl_certfile": str(cert),
        "federated.superlink.ssl_keyfile": str(cert), "federated.superlink.ssl_ca_certfile": str(cert),
        "federated.superlink.supernode_public_keys": [str(tmp_path / "site-a.pub")],
    })  # fmt: skip
    with pytest.raises(UserError, match=r"supernode_public_keys.0: no file .*site-a.pub"):
        transport_for(loaded.recipe.federated)


def test_the_secure_transport_has_tls_and_supernode_auth_and_local_is_loopback(tmp_path: Path) -> None:  # fmt: skip
    files = {}
    for name in ("cert.pem", "key.pem", "ca.pem", "site-a.pub", "site-b.pub"):
        (tmp_path / name).write_text("x")
        files[name] = tmp_path / name
    loaded = load_recipe("medical-lora", {
        "federated.superlink.address": "0.0.0.0:9443", "federated.superlink.ssl_certfile": str(files["cert.pem"]),
        "federated.superlink.ssl_keyfile": str(files["key.pem"]), "federated.superlink.ssl_ca_certfile": str(files["ca.pem"]),
        "federated.superlink.supernode_public_keys": [str(files["site-a.pub"]), str(files["site-b.pub"])],
    })  # fmt: skip
    secure = transport_for(loaded.recipe.federated)
    flags = secure.superlink_flags()
    assert "--insecure" not in flags and "--enable-supernode-auth" in flags
    assert flags[flags.index("--ssl-ca-certfile") + 1] == str(files["ca.pem"].resolve())
    assert (secure.host, secure.port, len(secure.public_keys)) == ("0.0.0.0", 9443, 2)
    toml = secure.connection_toml("ft-plugin", 9443)
    assert (
        'address = "127.0.0.1:9443"' in toml
        and "root-certificates" in toml
        and "insecure" not in toml
    )
    local = transport_for(load_recipe("medical-lora").recipe.federated)
    assert local == Transport() and local.superlink_flags() == ["--insecure"]
    assert (
        is_loopback(local.host)
        and not is_loopback("192.168.1.4")
        and not is_loopback("example.org")
    )
