"""The `ft-plugin` command line: parsing, exit codes and messages; no business logic.

One module per command group, each adding its commands with ``add_parser(commands)``
and calling functions of the pipeline's stages:

=============  ==========================================================
module         commands
=============  ==========================================================
``train``      train, ewc fisher (and ``python -m ft_plugin.train``)
``catalog``    recipes list/show/validate/schema/push, templates list/show/preview/push
``data``       data prepare
``evaluate``   eval (also --tasks, --import-ratings), route
``export``     export (merged, GGUF, Ollama)
``hub``        push, merge (and the ``push`` of recipes and templates)
``space``      space, space push
``federated``  federated (Flower)
=============  ==========================================================

Exit codes: 0 success, 2 a user error (one line on stderr naming what and where),
1 an unexpected failure (with traceback, it is a bug).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ft_plugin import __version__
from ft_plugin.errors import UserError, report

from . import catalog, data, evaluate, export, federated, hub, space, train

# In the order `ft-plugin --help` lists them.
GROUPS = (train, federated, export, hub, catalog, evaluate, space, data)


def build_parser() -> argparse.ArgumentParser:
    """The `ft-plugin` parser: every group's commands under one COMMAND.

    Example:
        >>> build_parser().parse_args(["merge", "runs/a", "--output", "m"]).output
        'm'
    """
    parser = argparse.ArgumentParser(
        prog="ft-plugin", description="Fine-tune LLMs for a domain from one YAML recipe."
    )
    parser.add_argument("--version", action="version", version=f"ft-plugin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    from ft_plugin.utils.noise import silence_third_party_noise

    silence_third_party_noise()
    try:
        return args.handler(args)
    except UserError as exc:
        return report(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
