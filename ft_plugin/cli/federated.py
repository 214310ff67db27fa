"""`ft-plugin federated RECIPE`: one adapter trained across clients on Flower."""

from __future__ import annotations

import argparse

from ft_plugin.config.options import add_set

from .arguments import Commands


def add_parser(commands: Commands) -> None:
    """``federated``."""
    federated = commands.add_parser(
        "federated", help="train one adapter across clients that keep their data (Flower)"
    )
    federated.add_argument("recipe", help="a recipe with a federated: section")
    add_set(federated)
    federated.add_argument("--output-dir", help="run directory (default: the recipe's output_dir)")
    federated.add_argument(
        "--resume", action="store_true", help="continue from the last completed round"
    )
    federated.set_defaults(handler=_federated)


def _federated(args: argparse.Namespace) -> int:
    from ft_plugin.config import load_recipe, parse_set_options
    from ft_plugin.federated.run import federated_train
    from ft_plugin.rundir import RunDir

    loaded = load_recipe(args.recipe, parse_set_options(args.set))
    result = federated_train(loaded, args.output_dir, args.resume)
    fed = result.metrics["federated"]
    print(
        f"done: {fed['rounds_completed']} rounds, {fed['num_clients']} clients ({fed['strategy']}, "
        f"partition {fed['partition']}), global held-out loss {result.metrics['eval_loss']}, "
        f"{fed['bytes_sent'] + fed['bytes_received']:,} bytes exchanged -> {result.run_dir}"
    )
    if fed.get("updates_refused"):
        print(
            f"{fed['updates_refused']} site updates left out of the average "
            f"({fed['rounds_kept_previous']} rounds kept the previous adapter): "
            f"see rounds[].refused in {RunDir(result.run_dir).metrics_path}"
        )
    return 0
