"""`ft-plugin train`, `ft-plugin ewc fisher`, and `python -m ft_plugin.train`.

``accelerate launch -m ft_plugin.train RECIPE`` ends in `main` here, with the same
arguments as ``ft-plugin train``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ft_plugin.errors import UserError

from .arguments import Commands, add_set, add_trust_recipe, print_warnings

if TYPE_CHECKING:
    from ft_plugin.train import RunResult


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `ft-plugin train` and `python -m ft_plugin.train`."""
    parser.add_argument("recipe", help="builtin recipe name, recipe file, or hf://OWNER/REPO/PATH")
    add_set(parser)
    add_trust_recipe(parser)
    parser.add_argument("--output-dir", help="run directory (default: the recipe's output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")


def add_parser(commands: Commands) -> None:
    """``train`` and ``ewc fisher``."""
    train = commands.add_parser("train", help="train a recipe into a run directory")
    add_train_arguments(train)
    train.set_defaults(handler=train_from_cli)

    ewc = commands.add_parser("ewc", help="elastic weight consolidation tools")
    ewc_commands = ewc.add_subparsers(dest="action", required=True, metavar="ACTION")
    fisher = ewc_commands.add_parser(
        "fisher", help="compute a run's diagonal Fisher (fisher.safetensors)"
    )
    fisher.add_argument("run_dir")
    fisher.add_argument(
        "--samples", type=int, default=200, help="training rows used (per-sample gradients)"
    )
    fisher.set_defaults(handler=_ewc_fisher)


def summary_line(result: RunResult) -> str:
    """One line on what a run achieved, ending with where it is."""
    m = result.metrics
    if "adapters" in m:
        accuracy = m["router"].get("accuracy")
        return (
            f"done: {len(m['adapters'])} task adapters, router held-out accuracy {accuracy} "
            f"-> {result.run_dir}"
        )
    parts = [f"train_loss {m['train_loss']:.4f}"]
    if m.get("eval_loss") is not None:
        parts.append(f"eval_loss {m['eval_loss']:.4f} (ppl {m['eval_perplexity']:.2f})")
    parts.append(f"{m['tokens_per_second']:.0f} tokens/s")
    parts.append(f"{m['steps']} steps in {m['wall_seconds']:.0f}s")
    if "rows_per_step" in m:
        parts.append(
            f"{m['rows_per_step']:g} rows / {m['tokens_per_step']:.0f} tokens per step "
            f"(packing: {m['packing']})"
        )
    parts.append(f"peak memory {m['peak_memory_mb']:,.0f} MB")
    return f"done: {', '.join(parts)} -> {result.run_dir}"


def train_from_cli(args: argparse.Namespace) -> int:
    """`ft-plugin train` and `python -m ft_plugin.train`: train, then print the summary."""
    from ft_plugin.config import load_recipe, remote_code_notice
    from ft_plugin.noise import silence_third_party_noise
    from ft_plugin.train import check_launch, is_main_process, train

    silence_third_party_noise()
    check_launch()
    loaded = load_recipe(args.recipe, args.set, trust=args.trust_recipe)
    if is_main_process():  # before any model loads: whose code a local trust_remote_code runs
        print_warnings([*loaded.warnings, *(f"ft-plugin: {note}" for note in loaded.notes)])
        if notice := remote_code_notice(loaded.recipe, loaded.located):
            print(f"ft-plugin: {notice}", file=sys.stderr)
    result = train(loaded, args.output_dir, args.resume)
    if not is_main_process():
        return 0
    print(summary_line(result))
    if loaded.recipe.hub_model_id:
        from ft_plugin.hub.publish import push_run

        hub = loaded.recipe.hub
        # hub_model_id names the repo this run updates (as in Axolotl); only the user's own
        # recipe can set it (config/trust.py), so pushing into the existing repo is meant.
        pushed = push_run(
            result.run_dir,
            loaded.recipe.hub_model_id,
            revision=hub.revision,
            create_pr=hub.create_pr,
            overwrite=True,
        )
        print(f"pushed to {pushed.url} ({pushed.commit})")
    _print_outputs(result.run_dir)
    return 0


def _print_outputs(run_dir: Path) -> None:
    from ft_plugin.rundir import ADAPTER_WEIGHTS, MODEL_WEIGHTS, RunDir

    run = RunDir(run_dir)
    for weights in (run.file(ADAPTER_WEIGHTS), run.file(MODEL_WEIGHTS)):
        if weights.exists():
            print(f"weights: {weights}")
    print(f"metrics: {run.metrics_path}   TensorBoard: tensorboard --logdir {run.logs}")


def _ewc_fisher(args: argparse.Namespace) -> int:
    from ft_plugin.continual.fisher import write_fisher

    path, count, trace = write_fisher(Path(args.run_dir), samples=args.samples)
    print(f"{path}: {count} tensors, trace {trace:.6g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for `accelerate launch -m ft_plugin.train RECIPE [--set K=V]...`."""
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
