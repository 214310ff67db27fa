"""`ft-plugin push`, `ft-plugin merge`, and `recipes push` / `templates push`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ft_plugin.errors import UserError

from .arguments import Commands


def add_parser(commands: Commands) -> None:
    """``push`` and ``merge``."""
    push = commands.add_parser("push", help="publish a run to the Hub with its model card")
    push.add_argument("run_dir")
    push.add_argument("--repo-id", required=True, help="OWNER/NAME")
    visibility = push.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private",
        dest="private",
        action="store_true",
        default=None,
        help="publish privately (default: the recipe's hub.private, true); an existing public "
        "repo is made private",
    )
    visibility.add_argument(
        "--public",
        dest="private",
        action="store_false",
        help="publish publicly (a new repo only: a private repo is made public on the Hub)",
    )
    push.add_argument(
        "--overwrite",
        action="store_true",
        help="push into a repo that exists already (refused without it)",
    )
    push.add_argument(
        "--include-predictions",
        action="store_true",
        help="also publish eval/predictions.jsonl (the evaluated prompts, references and "
        "answers; left out by default)",
    )
    push.add_argument("--revision", help="branch to push to (created when missing)")
    push.add_argument(
        "--create-pr", action="store_true", help="open a pull request instead of committing"
    )
    push.add_argument(
        "--merged", action="store_true", help="push merged full weights instead of the adapter"
    )
    push.add_argument(
        "--with-gguf",
        action="store_true",
        help="also push the GGUF files (and Modelfile) `ft-plugin export` wrote, listed in the card",
    )
    push.add_argument("--commit-message")
    push.set_defaults(handler=_push)

    merge = commands.add_parser("merge", help="merge an adapter into full weights")
    merge.add_argument(
        "run_dir", help="a run directory with a mergeable adapter (lora, dora, ia3, qlora)"
    )
    merge.add_argument("--output", required=True, help="folder for the merged safetensors model")
    merge.set_defaults(handler=_merge)


def add_configs_push(commands: Commands, kind: str) -> None:
    """``recipes push`` / ``templates push`` (``kind``: "recipes" or "templates")."""
    push = commands.add_parser(
        "push", help=f"publish {kind} to a Hub repo (use them as hf://OWNER/REPO/FILE)"
    )
    push.add_argument("files", nargs="+", metavar="FILE")
    push.add_argument("--repo-id", required=True)
    push.add_argument(
        "--public",
        dest="private",
        action="store_false",
        help="create the repo public (default private)",
    )
    push.set_defaults(handler=_configs_push, kind=kind)


def _push(args: argparse.Namespace) -> int:
    from ft_plugin.hub.publish import push_run

    result = push_run(
        Path(args.run_dir),
        args.repo_id,
        private=args.private,
        revision=args.revision,
        create_pr=args.create_pr,
        merged=args.merged,
        commit_message=args.commit_message,
        overwrite=args.overwrite,
        include_predictions=args.include_predictions,
        with_gguf=args.with_gguf,
    )
    if result.made_private:
        print(f"{result.repo_id}: was public, made private (pass --public to keep it public)")
    state = "pushed" if result.changed else "unchanged, no new commit"
    print(f"{result.repo_id}: {state} ({result.commit}) -> {result.url}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from ft_plugin.merge import merge_run

    output = merge_run(Path(args.run_dir), Path(args.output))
    print(f"merged weights -> {output}")
    return 0


def _configs_push(args: argparse.Namespace) -> int:
    from ft_plugin.hub.configs import push_configs

    files = [Path(f) for f in args.files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: no such file")
    result = push_configs(files, args.repo_id, args.kind, private=args.private)
    state = "pushed" if result.changed else "unchanged, no new commit"
    print(f"{result.repo_id}: {len(files)} {args.kind} {state} -> {result.url}")
    return 0
