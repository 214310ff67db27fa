"""`ft-plugin space TARGET…` (run the Gradio Space locally) and `ft-plugin space push`.

The arguments and the handler; the work is :func:`ft_plugin.space.launch.launch_space`
and :func:`ft_plugin.hub.space_folder.push_space`, imported when the command runs, so
gradio is imported only when the Space launches.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ft_plugin.errors import UserError

from .arguments import Commands

if TYPE_CHECKING:
    from ft_plugin.space.settings import Limits


def add_parser(commands: Commands) -> None:
    """``space`` (``space push`` is its first TARGET)."""
    space = commands.add_parser(
        "space", help="run the Gradio Space locally (TARGET…), or publish it (space push)"
    )
    add_space_arguments(space)
    space.set_defaults(handler=space_command)


def add_space_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ft-plugin space TARGET…`` and ``ft-plugin space push``."""
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="run directory or Hub adapter id (several: adapters of one base model), "
        "or `push` to publish the Space; none: open on Train",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--data-dir",
        default="space_data",
        help="where ratings.jsonl and the Train tab's runs (train/) are written "
        "(default %(default)s)",
    )
    parser.add_argument("--ratings-dataset", help="Hub dataset id to commit ratings.jsonl to")
    parser.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="Gradio's login (repeatable; also FT_PLUGIN_SPACE_AUTH): needed to train in a "
        "Space served beyond this machine (--host 0.0.0.0, --share)",
    )
    parser.add_argument("--share", action="store_true", help="a public gradio.live link")
    parser.add_argument(
        "--config",
        help="a Space config.yaml: limits, admins, base_models (what Train may fine-tune), train",
    )
    parser.add_argument(
        "--local-sign-in",
        action="store_true",
        help="develop Hugging Face sign-in on 127.0.0.1: Gradio's stand-in signs anyone in "
        "as this machine's Hugging Face user (never for a deployed Space)",
    )
    parser.add_argument("--repo-id", help="push: the Space, OWNER/NAME")
    parser.add_argument("--adapter", help="push: the adapter the Space serves, OWNER/NAME")
    seen = parser.add_mutually_exclusive_group()
    seen.add_argument("--private", action="store_true", help="push: only you (and your org) see it")
    seen.add_argument("--public", action="store_true", help="push: anyone sees it")
    parser.add_argument(
        "--train",
        action="store_true",
        help="push: turn the Train tab on, for the Space's owner (Hugging Face sign-in)",
    )


def space_command(args: argparse.Namespace) -> int:
    """Handler of ``ft-plugin space``: launch, or push with ``space push``."""
    if args.targets[:1] == ["push"]:
        return _push_command(args)
    if args.repo_id or args.adapter or args.private or args.public or args.train:
        raise UserError("--repo-id, --adapter, --private, --public and --train belong to "
                        "`ft-plugin space push`")  # fmt: skip
    from ft_plugin.space.access import access_for
    from ft_plugin.space.launch import launch_space
    from ft_plugin.space.settings import SpaceConfig, read_space_config

    config = SpaceConfig([], Path(args.data_dir))
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise UserError(f"--config {path}: no such file")
        config = read_space_config(path.parent, dict(os.environ), file=path.name)
    access = access_for(host=args.host, share=args.share, environ=os.environ, auth=args.auth,
                        admins=config.admins, training=config.train,
                        mock_sign_in=args.local_sign_in)  # fmt: skip
    launch_space(
        args.targets,
        host=args.host,
        limits=config.limits if args.config else limits_from_environment(),
        port=args.port,
        data_dir=Path(args.data_dir),
        ratings_dataset=args.ratings_dataset or config.ratings_dataset,
        access=access,
        base_models=config.base_models,
        share=args.share,
    )
    return 0


def limits_from_environment() -> Limits:
    """The Space's limits from ``FT_PLUGIN_*`` environment variables (no --config)."""
    from ft_plugin.space.settings import limits_from

    return limits_from({}, dict(os.environ), "the environment")


def _push_command(args: argparse.Namespace) -> int:
    from ft_plugin.hub.space_folder import push_space

    if len(args.targets) > 1:
        raise UserError(f"space push: unexpected argument {args.targets[1]!r}")
    missing = [flag for flag, value in (("--repo-id", args.repo_id),
               ("--adapter", args.adapter)) if not value]  # fmt: skip
    if missing:
        raise UserError(f"space push: {' and '.join(missing)} required")
    if not (args.private or args.public):
        raise UserError(
            "space push: choose who sees the Space: --private (you and your organisation) "
            "or --public (anyone)"
        )
    url = push_space(args.repo_id, args.adapter, private=args.private, train=args.train)
    train = "Train on, for its owner (Hugging Face sign-in)" if args.train else "Train off"
    print(
        f"{args.repo_id}: Space pushed -> {url} ({'private' if args.private else 'public'}; {train})"
    )
    return 0
