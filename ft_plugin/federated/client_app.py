"""The Flower ClientApp: one site's local training and evaluation on its own rows.

A site is configured by its own SuperNode's ``--node-config``, never by the server:
``recipe`` (the site's recipe: its data, base model, code and paths), ``work`` (its
scratch folder), and optionally ``dataset`` (one dataset entry replacing the recipe's
``datasets``: how ``ft-plugin federated`` gives a simulated site its share) and
``torch-threads``. From the server a round takes only what :mod:`.site_recipe` allows
(hyper-parameters and the adapter's shape); a message asking for anything else gets an
error reply saying why, and one line in the site's log (stderr and ``WORK/refused.log``).

The site trains ``max_steps`` optimizer steps from the global adapter it receives with
ft-plugin's own engine, and sends back the adapter (B alone for ffa-lora) and its
metrics (``num-examples``: the rows this round trained on; the server bounds it).
Flower starts one ClientApp process per message, so every round loads the model anew.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from . import weights
from .site_recipe import SITE_REFUSED, SiteRefusal, check_server_config, load_site_recipe

app = ClientApp()


def client_recipe(msg: Message, context: Context) -> Any:
    """This site's own recipe with the server's allowed settings (:class:`SiteRefusal`
    when the message asks for more)."""
    settings = check_server_config(dict(msg.content["config"]))
    return load_site_recipe(context.node_config, settings)


def refusal(msg: Message, context: Context, problem: SiteRefusal) -> Message:
    """The error reply for a refused message, after one line in the site's log."""
    line = f"ft-plugin site refused the server's {msg.metadata.message_type} message: {problem}"
    print(line, file=sys.stderr, flush=True)
    work = context.node_config.get("work")
    if work:
        Path(str(work)).mkdir(parents=True, exist_ok=True)
        with (Path(str(work)) / "refused.log").open("a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    return Message(Error(SITE_REFUSED, f"refused by the site: {problem}"), reply_to=msg)


def _load_global(model: Any, msg: Message) -> None:
    try:
        weights.load_global(model, msg.content["arrays"].to_torch_state_dict())
    except (ValueError, RuntimeError, TypeError) as exc:  # torch: size mismatch; numpy: bad bytes
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SiteRefusal(f"the global weights do not fit this site's adapter: {first}") from None


def _work(context: Context, name: str) -> Path:
    work = context.node_config.get("work")
    if not work:
        raise SiteRefusal("this SuperNode names no work folder: add work='DIR' to --node-config")
    folder = Path(str(work)) / name
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _train_with(msg: Message, context: Context) -> Message:
    from ft_plugin.engine import prepare_run, run

    config = msg.content["config"]
    loaded = client_recipe(msg, context)
    strategy = str(config.get("strategy", "fedavg"))
    folder = _work(context, f"round-{int(config.get('round', config['server-round']))}")
    prepared = prepare_run(loaded, str(folder))
    model = prepared.trainer.model
    _load_global(model, msg)
    weights.freeze_shared(model, strategy)
    result = run(prepared)
    sent = weights.travelling(weights.adapter_state(model), strategy)
    metrics = {"num-examples": int(result.metrics["rows_per_step"] * result.metrics["steps"]),
               "train_loss": float(result.metrics["train_loss"])}  # fmt: skip
    shutil.rmtree(result.run_dir, ignore_errors=True)
    return Message(
        RecordDict({"arrays": ArrayRecord(sent), "metrics": MetricRecord(metrics)}), reply_to=msg
    )


def clipping_when_asked(msg: Message, context: Context, call_next: Any) -> Message:
    """Flower's ``fixedclipping_mod`` when the server's DP wrapper sent a clipping norm
    (client-side DP); without DP the message passes untouched."""
    if "clipping_norm" in msg.content["config"]:
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


@app.train(mods=[clipping_when_asked])
def train(msg: Message, context: Context) -> Message:
    """Local steps from the global adapter; the updated adapter (B alone for ffa-lora)."""
    try:
        return _train_with(msg, context)
    except SiteRefusal as problem:
        return refusal(msg, context, problem)


def _evaluate_with(msg: Message, context: Context) -> Message:
    import torch

    from ft_plugin.data import build_training_data
    from ft_plugin.evaluate.perplexity import corpus_perplexity

    loaded = client_recipe(msg, context)
    model, tokenizer = weights.seeded_model(loaded)
    _load_global(model, msg)
    held_out = build_training_data(loaded.recipe, tokenizer).eval
    if held_out is None or not len(held_out):
        metrics = {"num-examples": 0, "eval_loss": 0.0}
    else:
        with torch.inference_mode():
            scored = corpus_perplexity(
                model.eval(), tokenizer, list(held_out), sequence_len=loaded.recipe.sequence_len
            )
        metrics = {
            "num-examples": int(scored.tokens),
            "eval_loss": float(scored.nll_sum / max(1, scored.tokens)),
        }
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Held-out answer loss of the global adapter on this site's held-out split."""
    try:
        return _evaluate_with(msg, context)
    except SiteRefusal as problem:
        return refusal(msg, context, problem)
