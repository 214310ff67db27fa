"""Arguments that several commands share: how a file is read (the recipe options, ``--set``
and ``--trust-recipe``, are ``ft_plugin.config.options``, shared with ``python -m
ft_plugin.train``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
Commands = argparse._SubParsersAction  # what `add_subparsers` returns


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
