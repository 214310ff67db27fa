"""A finished federation as a normal run directory: the global adapter (``PeftModel
.from_pretrained`` loads it), ``metrics.json`` with ``federated.rounds_completed``,
``federated.updates_refused`` and the ``rounds`` list (each round's ``refused`` entries
say which site's reply was left out and why), and a plot of the rounds."""

from __future__ import annotations

from typing import Any

from ft_plugin.rundir import RunDir

from . import weights
from .layout import FederatedDir


def _summary(loaded: Any, rounds: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    settings = loaded.recipe.federated
    last = rounds[-1] if rounds else {}
    losses = [c["train_loss"] for c in last.get("clients", []) if "train_loss" in c]
    return {
        "federated": {
            "rounds_completed": len(rounds), "num_clients": settings.num_clients,
            "partition": settings.partition, "strategy": settings.strategy,
            "local_steps": settings.local_steps, "fraction_train": settings.fraction_train,
            "dp": settings.dp.model_dump() if settings.dp else None, "engine": settings.engine,
            "bytes_sent": sum(r.get("bytes_sent", 0) for r in rounds),
            "bytes_received": sum(r.get("bytes_received", 0) for r in rounds),
            "updates_refused": sum(
                r["stage"] == "train" for rnd in rounds for r in rnd.get("refused", [])
            ),
            "rounds_kept_previous": sum(bool(r.get("kept_previous")) for r in rounds),
        },
        "rounds": rounds,
        "train_loss": round(sum(losses) / len(losses), 6) if losses else None,
        "eval_loss": last.get("eval_loss"),
        "steps": len(rounds) * settings.local_steps,
        "wall_seconds": round(wall_seconds, 1),
    }  # fmt: skip


def plot_rounds(rounds: list[dict[str, Any]], path: Any) -> None:
    """Global held-out loss and each client's training loss, by round."""
    from ft_plugin.utils.plots import new_figure, save_png

    fig, axes = new_figure()
    numbers = [r["round"] for r in rounds]
    if any("eval_loss" in r for r in rounds):
        axes.plot(numbers, [r.get("eval_loss") for r in rounds], "o-", label="global held-out loss")
    nodes = sorted({c["node"] for r in rounds for c in r["clients"]})
    for k, node in enumerate(nodes):
        points = [
            (r["round"], c["train_loss"]) for r in rounds for c in r["clients"] if c["node"] == node
        ]
        axes.plot(*zip(*points, strict=True), ".--", alpha=0.7, label=f"client {k + 1} train loss")
    axes.set_xlabel("round")
    axes.set_ylabel("loss")
    axes.legend()
    save_png(fig, path)


def finish_run(loaded: Any, folder: FederatedDir, wall_seconds: float) -> dict[str, Any]:
    run = RunDir(folder.run_dir)
    done, state = folder.resume_point()
    if state is None:
        raise RuntimeError("the federation ended without a global adapter")
    model, tokenizer = weights.seeded_model(loaded)
    weights.save_adapter(model, state, run.path)
    tokenizer.save_pretrained(str(run.path))
    rounds = folder.rounds()
    metrics = _summary(loaded, rounds, wall_seconds)
    metrics["trainable_params"] = sum(int(v.numel()) for v in state.values())
    run.write_metrics(metrics)
    run.logs.mkdir(parents=True, exist_ok=True)
    plot_rounds(rounds, run.logs / "rounds.png")
    run.write_status("done", step=metrics["steps"], max_steps=metrics["steps"])
    return metrics
