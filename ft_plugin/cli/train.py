"""`ft-plugin train` and `ft-plugin ewc fisher`.

`train` is ``ft_plugin.train.command`` (shared with ``accelerate launch -m
ft_plugin.train``); this module only adds it to the command line's parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ft_plugin.train.command import add_train_arguments, train_command

from .arguments import Commands


def add_parser(commands: Commands) -> None:
    """``train`` and ``ewc fisher``."""
    train = commands.add_parser("train", help="train a recipe into a run directory")
    add_train_arguments(train)
    train.set_defaults(handler=train_command)

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


def _ewc_fisher(args: argparse.Namespace) -> int:
    from ft_plugin.continual.fisher import write_fisher

    path, count, trace = write_fisher(Path(args.run_dir), samples=args.samples)
    print(f"{path}: {count} tensors, trace {trace:.6g}")
    return 0
