"""The recipe options of every command that loads a recipe: ``--set KEY=VALUE`` and
``--trust-recipe``, and how a recipe's warnings are printed.

Here, beside the loader, so that ``python -m ft_plugin.train`` defines the same options as
``ft-plugin train`` without importing the command line.
"""

from __future__ import annotations

import argparse
import sys


def add_set(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE``, repeatable: recipe overrides."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key (dotted for nested keys, e.g. hub.private=false); repeatable",
    )


def add_trust_recipe(parser: argparse.ArgumentParser) -> None:
    """``--trust-recipe hf://OWNER/REPO@COMMIT/PATH``, repeatable: a remote recipe file
    allowed to set what only local files may (code, local files, publishing)."""
    parser.add_argument(
        "--trust-recipe",
        action="append",
        default=[],
        metavar="HF_REF",
        help="let this Hub recipe file, pinned to a commit (hf://OWNER/REPO@COMMIT/PATH), set "
        "keys that run code, read or write this machine's files, or publish; repeatable",
    )


def print_warnings(lines: list[str]) -> None:
    """Warnings a command's work produced, one line each on stderr."""
    for line in lines:
        print(line, file=sys.stderr)
