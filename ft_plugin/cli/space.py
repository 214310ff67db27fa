"""`ft-plugin space TARGET…` (run the Gradio Space locally) and `ft-plugin space push`.

The arguments and the handler are `ft_plugin.space_launch`'s; gradio is imported only
when the Space launches.
"""

from __future__ import annotations

import argparse

from .arguments import Commands


def add_parser(commands: Commands) -> None:
    """``space`` (``space push`` is its first TARGET)."""
    from ft_plugin.space_launch import add_space_arguments

    space = commands.add_parser(
        "space", help="run the Gradio Space locally (TARGET…), or publish it (space push)"
    )
    add_space_arguments(space)
    space.set_defaults(handler=_space)


def _space(args: argparse.Namespace) -> int:
    from ft_plugin.space_launch import space_command

    return space_command(args)
