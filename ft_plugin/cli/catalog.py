"""`ft-plugin recipes …` and `ft-plugin templates …`: what the registry holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ft_plugin import registry
from ft_plugin.config.options import add_set, add_trust_recipe, print_warnings
from ft_plugin.errors import UserError

from .arguments import Commands, add_data_file_arguments
from .hub import add_configs_push


def add_parser(commands: Commands) -> None:
    """``recipes`` and ``templates``, each with its actions."""
    _add_recipes(commands)
    _add_templates(commands)


def _add_recipes(commands: Commands) -> None:
    recipes = commands.add_parser("recipes", help="list, show, validate recipes; print the schema")
    actions = recipes.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="builtin and plugin recipes").set_defaults(
        handler=_recipes_list
    )
    show = actions.add_parser("show", help="print a recipe fully resolved")
    show.add_argument("recipe", help="name, path or hf:// reference")
    add_set(show)
    add_trust_recipe(show)
    show.set_defaults(handler=_recipes_show)
    validate = actions.add_parser(
        "validate", help="check recipe files (Axolotl configs too): every problem at once"
    )
    validate.add_argument("paths", nargs="+", metavar="RECIPE")
    validate.add_argument(
        "--explain",
        action="store_true",
        help="per key of each file: honoured, no effect here (why) or refused (why), "
        "ours (an ft-plugin key) or unknown",
    )
    add_set(validate)
    add_trust_recipe(validate)
    validate.set_defaults(handler=_recipes_validate)
    actions.add_parser("schema", help="the recipe JSON schema").set_defaults(
        handler=_recipes_schema
    )
    add_configs_push(actions, "recipes")


def _add_templates(commands: Commands) -> None:
    templates = commands.add_parser("templates", help="domain dataset templates")
    actions = templates.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="builtin and plugin templates").set_defaults(
        handler=_templates_list
    )
    show = actions.add_parser("show", help="print a template")
    show.add_argument("name")
    show.set_defaults(handler=_templates_show)
    preview = actions.add_parser(
        "preview", help="the exact training text of a few rows, loss-carrying part marked « »"
    )
    preview.add_argument("name", help="template name, path or hf:// reference")
    preview.add_argument("--data", help="rows to render (default: the template's sample data)")
    preview.add_argument("-n", type=int, default=3, help="rows to show (default 3)")
    preview.add_argument(
        "--base-model", default="embedded:smollm2-135m-instruct", help="whose chat template"
    )
    preview.add_argument("--sequence-len", type=int, default=512, help="cut-off, as in the recipe")
    add_data_file_arguments(preview)
    preview.set_defaults(handler=_templates_preview)
    add_configs_push(actions, "templates")


def _recipes_list(args: argparse.Namespace) -> int:
    from ft_plugin.config import load_recipe

    rows = []
    for name, entry in sorted(registry.recipes().items()):
        try:
            recipe = load_recipe(str(entry.path)).recipe
            rows.append((name, recipe.adapter, recipe.domain or "-", recipe.description or ""))
        except UserError as exc:
            rows.append((name, "?", "?", f"INVALID: {exc}"))
    width = max((len(r[0]) for r in rows), default=4)
    print(f"{'NAME':<{width}}  {'METHOD':<13}  {'DOMAIN':<8}  DESCRIPTION")
    for name, method, domain, description in rows:
        print(f"{name:<{width}}  {method:<13}  {domain:<8}  {description}")
    return 0


def _recipes_show(args: argparse.Namespace) -> int:
    from ft_plugin.config import load_recipe, parse_set_options

    loaded = load_recipe(args.recipe, parse_set_options(args.set), trust=args.trust_recipe)
    print_warnings(loaded.warnings)
    print(loaded.to_yaml(), end="")
    return 0


def _recipes_validate(args: argparse.Namespace) -> int:
    from ft_plugin.config import load_recipe, parse_set_options

    failed = 0
    for path in args.paths:
        if args.explain:
            _explain(path)
        try:
            # parsed for each file: a bad --set is an error line of each, as a bad key is
            loaded = load_recipe(path, parse_set_options(args.set), trust=args.trust_recipe)
            print_warnings([*loaded.warnings, *(f"note: {n}" for n in loaded.notes)])
            print(f"ok  {path}  ({loaded.recipe.adapter}, {loaded.recipe.base_model})")
        except UserError as exc:
            for line in str(exc).splitlines():
                print(f"error: {line}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def _explain(path: str) -> None:
    """Each key the file itself writes (dataset entries' too), and what ft-plugin does
    with it; the file need not validate."""
    from ft_plugin.config.axolotl import explain_key
    from ft_plugin.config.yaml_source import read_yaml

    data = read_yaml(Path(path)).data
    rows = [(key, key, value) for key, value in data.items()]
    for group in ("datasets", "test_datasets", "pretraining_dataset"):
        for index, entry in enumerate(data.get(group) or []):
            if isinstance(entry, dict):
                rows += [(f"{group}.{index}.{key}", f"datasets.{key}", value)
                         for key, value in entry.items()]  # fmt: skip
    print(f"{path}:")
    for shown, key, value in rows:
        status, why = explain_key(key, value) if key != "extends" else ("ours", "composition")
        if value is None and status != "unknown":
            status, why = "unset", "left empty: unset, as in Axolotl"
        print(f"  {status:<10} {shown}" + (f": {why}" if why else ""))


def _recipes_schema(args: argparse.Namespace) -> int:
    from ft_plugin.config import Recipe

    print(json.dumps(Recipe.model_json_schema(), indent=2))
    return 0


def _templates_list(args: argparse.Namespace) -> int:
    from ft_plugin.data.templates import load_template

    entries = sorted(registry.templates().items())
    width = max((len(name) for name, _ in entries), default=4)
    print(f"{'NAME':<{width}}  {'DOMAIN':<8}  {'KIND':<14}  DESCRIPTION")
    for name, entry in entries:
        template = load_template(str(entry.path))
        kind = "classification" if template.labels else "generation"
        print(f"{name:<{width}}  {template.domain:<8}  {kind:<14}  {template.description}")
    return 0


def _templates_show(args: argparse.Namespace) -> int:
    entries = registry.templates()
    if args.name not in entries:
        raise UserError(
            f"{args.name}: no such template; known: {', '.join(sorted(entries)) or 'none'}"
        )
    print(entries[args.name].path.read_text(encoding="utf-8"), end="")
    return 0


def _templates_preview(args: argparse.Namespace) -> int:
    from ft_plugin.data.preview import preview_template
    from ft_plugin.models import base_tokenizer

    preview = preview_template(
        args.name,
        args.data,
        base_tokenizer(args.base_model),
        rows=args.n,
        sequence_len=args.sequence_len,
        field_pairs=args.field,
        encoding=args.encoding,
    )
    print(f"template {preview.template} on {preview.source}, tokenizer of {args.base_model}\n")
    print("\n\n".join(preview.blocks))
    for line in preview.warnings:
        print(line, file=sys.stderr)
    return 0
