"""Arguments that several commands share: ``--set``, ``--trust-recipe``, how a file is read."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
Commands = argparse._SubParsersAction  # what `add_subparsers` returns


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


def add_data_file_arguments(parser: argparse.ArgumentParser) -> None:
    """How a user's own file is read: its columns and its encoding."""
    parser.add_argument(
        "--field",
        action="append",
        metavar="NAME=COLUMN",
        help="fill template field NAME from COLUMN (the recipe's field_NAME), e.g. "
        "--field instruction=ask; repeatable",
    )
    parser.add_argument(
        "--encoding", help="text encoding of the file (default: detected), e.g. gb18030"
    )
