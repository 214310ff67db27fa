"""``ft-plugin train RECIPE`` and ``accelerate launch -m ft_plugin.train RECIPE``, end to end:
load the recipe, train, print the summary, push when the recipe names a Hub repo.

Both commands end in :func:`train_command`; ``ft_plugin.cli`` only adds it to its parser,
so ``python -m ft_plugin.train`` never imports the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ft_plugin.config.options import add_set, add_trust_recipe, print_warnings

if TYPE_CHECKING:
    from ft_plugin.engine import RunResult


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `ft-plugin train` and `python -m ft_plugin.train`."""
    parser.add_argument("recipe", help="builtin recipe name, recipe file, or hf://OWNER/REPO/PATH")
    add_set(parser)
    add_trust_recipe(parser)
    parser.add_argument("--output-dir", help="run directory (default: the recipe's output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")


def train_command(args: argparse.Namespace) -> int:
    """Train the recipe ``args`` name, print the summary (main process), push when asked."""
    from ft_plugin import train as training  # looked up at call time (tests stop it early)
    from ft_plugin.config import load_recipe, parse_set_options, remote_code_notice
    from ft_plugin.engine import check_launch, is_main_process
    from ft_plugin.hub.publish import push_trained_run
    from ft_plugin.utils.noise import silence_third_party_noise

    silence_third_party_noise()
    check_launch()
    loaded = load_recipe(args.recipe, parse_set_options(args.set), trust=args.trust_recipe)
    if is_main_process():  # before any model loads: whose code a local trust_remote_code runs
        print_warnings([*loaded.warnings, *(f"ft-plugin: {note}" for note in loaded.notes)])
        if notice := remote_code_notice(loaded.recipe, loaded.located):
            print(f"ft-plugin: {notice}", file=sys.stderr)
    result = training.train(loaded, args.output_dir, args.resume)
    if not is_main_process():
        return 0
    print(summary_line(result))
    if pushed := push_trained_run(loaded.recipe, result.run_dir):
        print(f"pushed to {pushed.url} ({pushed.commit})")
    _print_outputs(result.run_dir)
    return 0


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
    if m.get("eval_loss") is not None:  # a preference loss has no perplexity
        ppl = m.get("eval_perplexity")
        parts.append(f"eval_loss {m['eval_loss']:.4f}" + (f" (ppl {ppl:.2f})" if ppl else ""))
    if held_out := m.get("rewards", {}).get("eval"):
        parts.append(f"held-out reward accuracy {held_out['accuracy']:.3f} "
                     f"(margin {held_out['margin']:.3f})")  # fmt: skip
    parts.append(f"{m['tokens_per_second']:.0f} tokens/s")
    parts.append(f"{m['steps']} steps in {m['wall_seconds']:.0f}s")
    if "rows_per_step" in m:
        parts.append(
            f"{m['rows_per_step']:g} rows / {m['tokens_per_step']:.0f} tokens per step "
            f"(packing: {m['packing']})"
        )
    parts.append(f"peak memory {m['peak_memory_mb']:,.0f} MB")
    return f"done: {', '.join(parts)} -> {result.run_dir}"


def _print_outputs(run_dir: Path) -> None:
    from ft_plugin.rundir import ADAPTER_WEIGHTS, MODEL_WEIGHTS, RunDir

    run = RunDir(run_dir)
    for weights in (run.file(ADAPTER_WEIGHTS), run.file(MODEL_WEIGHTS)):
        if weights.exists():
            print(f"weights: {weights}")
    print(f"metrics: {run.metrics_path}   TensorBoard: tensorboard --logdir {run.logs}")


def main(argv: list[str] | None = None) -> int:
    """Entry point for `accelerate launch -m ft_plugin.train RECIPE [--set K=V]...`."""
    from ft_plugin.errors import UserError, report

    parser = argparse.ArgumentParser(
        prog="python -m ft_plugin.train", description="Train a recipe."
    )
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return train_command(args)
    except UserError as exc:
        return report(exc)
