"""The command line as a package: every group is listed and answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import cli

from ft_plugin.cli import build_parser

# train, ewc: cli/train.py; push, merge: hub.py; recipes, templates: catalog.py;
# eval, route: evaluate.py; space: space.py; data: data.py.
COMMANDS = ("train", "ewc", "push", "merge", "recipes", "templates")
COMMANDS += ("eval", "route", "space", "data")


def test_help_lists_every_command_group() -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("options:")[0]
    for command in COMMANDS:
        assert f"\n    {command} " in listed or f"\n    {command}\n" in listed, command


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.slow
def test_each_group_help_exits_0(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: ft-plugin {command}")


def test_every_action_parses_its_help() -> None:
    """Each ACTION of a group (recipes list, data prepare, …) has its own --help."""
    parser = build_parser()
    for command in ("ewc", "recipes", "templates", "data"):
        group = next(a for a in parser._subparsers._group_actions).choices[command]
        actions = next(a for a in group._subparsers._group_actions).choices
        for action in actions:
            with pytest.raises(SystemExit) as exit_info:
                parser.parse_args([command, action, "--help"])
            assert exit_info.value.code == 0, (command, action)


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from ft_plugin.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
