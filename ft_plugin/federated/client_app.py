"""The Flower ClientApp: one site's local training and evaluation on its own rows.

A SuperNode is started with ``--node-config "partition-id=K data=PATH work=DIR"``: the
client reads its rows from ``data`` and nothing else, and trains with ft-plugin's own
engine (the recipe's method, template, cleaning and packing), ``local_steps`` optimizer
steps per round from the global adapter it receives. Only adapter weights and metrics
go back (``num-examples`` weights the average: the rows this round trained on).
Flower starts one ClientApp process per message, so every round loads the model anew.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from . import weights

app = ClientApp()


def client_recipe(context: Context, **overrides: Any) -> Any:
    """The run's recipe with this site's data (its only dataset) and ``overrides``."""
    from ft_plugin.config import load_recipe

    node, run = context.node_config, context.run_config
    dataset = json.loads(str(node["dataset"]))
    settings = [f"datasets={json.dumps([dataset], ensure_ascii=False)}", "report_to=none",
                "save_steps=1000000", "eval_steps=1000000", "resume=false"]  # fmt: skip
    if run.get("torch-threads"):
        settings.append(f"torch_threads={int(run['torch-threads'])}")
    settings += [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return load_recipe(str(run["recipe"]), settings)


def _work(context: Context, name: str) -> Path:
    folder = Path(str(context.node_config["work"])) / name
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _train_with(msg: Message, context: Context) -> Message:
    from ft_plugin.train import prepare_run, run

    config = msg.content["config"]
    strategy = str(context.run_config["strategy"])
    local_steps = int(context.run_config["local-steps"])
    loaded = client_recipe(context, max_steps=local_steps, learning_rate=float(config["lr"]))
    prepared = prepare_run(loaded, str(_work(context, f"round-{int(config['round'])}")))
    model = prepared.trainer.model
    weights.load_global(model, msg.content["arrays"].to_torch_state_dict())
    weights.freeze_shared(model, strategy)
    result = run(prepared)
    sent = weights.travelling(weights.adapter_state(model), strategy)
    metrics = {"num-examples": int(result.metrics["rows_per_step"] * result.metrics["steps"]),
               "train_loss": float(result.metrics["train_loss"]),
               "bytes": weights.payload_bytes(sent)}  # fmt: skip
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
    return _train_with(msg, context)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Held-out answer loss of the global adapter on this site's held-out split."""
    import torch

    from ft_plugin.data import build_training_data
    from ft_plugin.evaluate.perplexity import corpus_perplexity

    loaded = client_recipe(context)
    model, tokenizer = weights.seeded_model(loaded)
    weights.load_global(model, msg.content["arrays"].to_torch_state_dict())
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
