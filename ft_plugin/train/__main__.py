"""``accelerate launch -m ft_plugin.train RECIPE [--set K=V]…``: the command line's train."""

from __future__ import annotations

import argparse
import sys

from ft_plugin.config import load_recipe
from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir

from . import RunResult, check_launch, is_main_process, train


def summary_line(result: RunResult) -> str:
    m = result.metrics
    if "adapters" in m:
        accuracy = m["router"].get("accuracy")
        return f"done: {len(m['adapters'])} task adapters, router held-out accuracy {accuracy} -> {result.run_dir}"
    parts = [f"train_loss {m['train_loss']:.4f}"]
    if m.get("eval_loss") is not None:
        parts.append(f"eval_loss {m['eval_loss']:.4f} (ppl {m['eval_perplexity']:.2f})")
    parts.append(f"{m['tokens_per_second']:.0f} tokens/s")
    parts.append(f"{m['steps']} steps in {m['wall_seconds']:.0f}s")
    if "rows_per_step" in m:
        parts.append(f"{m['rows_per_step']:g} rows / {m['tokens_per_step']:.0f} tokens per step "
                     f"(packing: {m['packing']})")  # fmt: skip
    parts.append(f"peak memory {m['peak_memory_mb']:,.0f} MB")
    return f"done: {', '.join(parts)} -> {result.run_dir}"


def train_from_cli(args: argparse.Namespace) -> int:
    """`ft-plugin train` and `python -m ft_plugin.train`: train, then print the summary."""
    from ft_plugin.noise import silence_third_party_noise

    silence_third_party_noise()
    check_launch()
    loaded = load_recipe(args.recipe, args.set)
    result = train(loaded, args.output_dir, args.resume)
    if not is_main_process():
        return 0
    print(summary_line(result))
    if loaded.recipe.hub_model_id:
        from ft_plugin.hub.publish import push_run

        pushed = push_run(result.run_dir, loaded.recipe.hub_model_id, revision=loaded.recipe.hub.revision,
                          create_pr=loaded.recipe.hub.create_pr)  # fmt: skip
        print(f"pushed to {pushed.url} ({pushed.commit})")
    folder = RunDir(result.run_dir)
    for weights in (*folder.weight_files(uses_peft=True), *folder.weight_files(uses_peft=False)):
        if weights.endswith(".safetensors") and folder.file(weights).exists():
            print(f"weights: {folder.file(weights)}")
    print(f"metrics: {folder.metrics_path}   TensorBoard: tensorboard --logdir {folder.logs}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for `accelerate launch -m ft_plugin.train RECIPE [--set K=V]...`."""
    from ft_plugin.cli import add_train_arguments

    parser = argparse.ArgumentParser(
        prog="python -m ft_plugin.train", description="Train a recipe."
    )
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return train_from_cli(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
