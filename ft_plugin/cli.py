"""The `ft-plugin` command line: parsing, exit codes and messages; no business logic.

Exit codes: 0 success, 2 a user error (one line on stderr naming what and where),
1 an unexpected failure (with traceback, it is a bug).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ft_plugin import __version__, registry
from ft_plugin.errors import UserError

Handler = Callable[[argparse.Namespace], int]


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
    from ft_plugin.config import load_recipe

    print(load_recipe(args.recipe, args.set).to_yaml(), end="")
    return 0


def _recipes_validate(args: argparse.Namespace) -> int:
    from ft_plugin.config import load_recipe

    failed = 0
    for path in args.paths:
        try:
            loaded = load_recipe(path, args.set)
            print(f"ok  {path}  ({loaded.recipe.adapter}, {loaded.recipe.base_model})")
        except UserError as exc:
            print(str(exc), file=sys.stderr)
            failed += 1
    return 2 if failed else 0


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
    from transformers import AutoTokenizer

    from ft_plugin.data.columns import parse_field_arguments
    from ft_plugin.data.preview import template_preview
    from ft_plugin.data.templates import load_template
    from ft_plugin.models import resolve_base_model

    template = load_template(args.name)
    fields = parse_field_arguments(args.field, template)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(args.base_model).path)
    data, blocks, warnings = template_preview(
        template, args.data, tokenizer, rows=args.n, sequence_len=args.sequence_len,
        fields=fields, encoding=args.encoding,
    )  # fmt: skip
    print(f"template {template.name} on {data}, tokenizer of {args.base_model}\n")
    print("\n\n".join(blocks))
    for line in warnings:
        print(line, file=sys.stderr)
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from ft_plugin.data.prepare import PrepareOptions, prepare_dataset
    from ft_plugin.data.templates import load_template

    jobs = _prepare_jobs(args)
    from ft_plugin.data.lengths import length_advice

    tokenizer = None
    if args.tokenizer != "none":
        from transformers import AutoTokenizer

        from ft_plugin.models import resolve_base_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(args.tokenizer).path)
    for index, (template_ref, inputs, field_map, recipe_key, encoding) in enumerate(jobs):
        output = Path(args.output)
        if len(jobs) > 1:
            output = output.with_name(f"{output.stem}.{index}{output.suffix}")
        options = PrepareOptions(
            scrub_pii=args.pii,
            near_dup_threshold="template"
            if args.near_dup is None
            else (None if args.near_dup == "off" else float(args.near_dup)),
            balance=args.balance,
            target_ratio=args.target_ratio,
            augment=[k for k in (args.augment or "").split(",") if k],
            topics=None
            if args.topics is None
            else (args.topics if args.topics == "auto" else int(args.topics)),
            sequence_len=args.sequence_len,
            seed=args.seed,
            field_map=field_map,
            encoding=encoding,
            recipe_key=recipe_key,
        )
        report_path = Path(args.report) if args.report and len(jobs) == 1 else None
        result = prepare_dataset(load_template(template_ref), inputs, output, tokenizer=tokenizer,
                                 options=options, report_path=report_path)  # fmt: skip
        r = result.report
        dropped = ", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "none"
        encodings = ", ".join(sorted({e for e in r["encodings"].values() if e})) or "-"
        print(f"{result.output}: {r['input_rows']} rows in, {r['output_rows']} out (dropped: {dropped}); "
              f"encoding {encodings}")  # fmt: skip
        if r.get("length_tokens") and (
            advice := length_advice(r["length_tokens"], "--sequence-len")
        ):
            print(f"note: {advice}", file=sys.stderr)
        print(f"report: {result.report_path} (+ .md, .png)")
    return 0


Job = tuple[str, list[str], dict[str, str], str | None, str | None]


def _prepare_jobs(args: argparse.Namespace) -> list[Job]:
    """(template, inputs, field map, recipe key, encoding) per dataset: from
    --template/--input (with --field, --encoding), or a recipe's datasets."""
    from ft_plugin.data.templates import load_template

    if args.recipe is None:
        if not args.template or not args.input:
            raise UserError("data prepare: give RECIPE, or --template NAME with --input FILE")
        from ft_plugin.data.columns import parse_field_arguments

        fields = parse_field_arguments(args.field, load_template(args.template))
        return [(args.template, list(args.input), fields, None, args.encoding)]
    if args.field or args.encoding:
        raise UserError("data prepare RECIPE: set field_* and encoding: in the recipe's datasets")
    from ft_plugin.config import load_recipe
    from ft_plugin.data.formats import CONVERTERS, template_mapping

    recipe = load_recipe(args.recipe, args.set).recipe
    jobs: list[Job] = []
    for index, spec in enumerate(recipe.datasets):
        if spec.type in CONVERTERS:
            raise UserError(
                f"datasets.{index}.type: {spec.type} has no template to clean by; "
                "use a domain template type (ft-plugin templates list) or --template"
            )
        mapping = template_mapping(load_template(spec.type), spec)
        jobs.append((spec.type, [spec.path], mapping, f"datasets.{index}", spec.encoding))
    return jobs


def _eval(args: argparse.Namespace) -> int:

    if args.import_ratings:
        return _import_ratings(args)
    if args.tasks:
        return _forgetting(args)
    if args.target is None:
        raise UserError(
            "eval: give TARGET (a run directory or a base model), or --import-ratings FILE"
        )
    from ft_plugin.evaluate.report import write_eval_report
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation

    settings = EvalSettings(
        data=args.data, template=args.template, baseline=args.baseline or bool(args.human_sheet),
        data_type=args.type, fields=_eval_fields(args), encoding=args.encoding,
        metrics=args.metrics.split(",") if args.metrics else None, max_samples=args.max_samples,
        max_new_tokens=args.max_new_tokens, scoring=args.scoring, price_per_hour=args.price_per_hour,
    )  # fmt: skip
    report, results, loaded, data = run_evaluation(args.target, settings)
    output = Path(args.output) if args.output else _default_eval_dir(args.target)
    state = loaded.run_dir / "trainer_state.json" if loaded.run_dir else None
    write_eval_report(
        report.to_dict(), output, results=results, labels=data.labels, trainer_state=state
    )
    if args.human_sheet:
        from ft_plugin.evaluate.human import write_human_sheet
        from ft_plugin.evaluate.runner import human_sheet_items

        write_human_sheet(
            human_sheet_items(loaded, data, results, settings), Path(args.human_sheet)
        )
        print(
            f"human sheet: {args.human_sheet} (key: {Path(args.human_sheet).with_suffix('')}.key.csv)"
        )
    from ft_plugin.evaluate.report import terminal_table

    print(terminal_table(report.to_dict()))
    print(f"report: {output / 'report.md'} (numbers in report.json)")
    return 0


def _eval_fields(args: argparse.Namespace) -> dict[str, str]:
    """--field for eval: template field names with a template, the row type's otherwise."""
    from ft_plugin.data import columns
    from ft_plugin.data.formats import CONVERTERS

    if args.template and args.template not in CONVERTERS:
        from ft_plugin.data.templates import load_template

        return columns.parse_field_arguments(args.field, load_template(args.template))
    return columns.parse_plain_field_arguments(args.field)


def _forgetting(args: argparse.Namespace) -> int:
    import json

    from ft_plugin.evaluate.runner import EvalSettings
    from ft_plugin.evaluate.sequence import forgetting_report

    settings = EvalSettings(
        template=args.template, max_samples=args.max_samples, scoring=args.scoring
    )
    output = (
        Path(args.output)
        if args.output
        else Path(args.target.split(",")[0]) / "eval" / "forgetting"
    )
    report = forgetting_report(args.target, args.tasks.split(","), settings, output)
    keys = ("metric", "R", "baseline", "average_accuracy", "bwt", "fwt", "forgetting")
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    print(f"report: {output / 'forgetting.json'} (+ forgetting.png)")
    return 0


def _route(args: argparse.Namespace) -> int:
    from ft_plugin.continual.router import AdapterRouter

    folder = Path(args.run_dir) / "router"
    if not folder.is_dir():
        raise UserError(f"{args.run_dir}: no router (train a recipe with adapters: first)")
    router = AdapterRouter.load(folder)
    for name, p in sorted(router.route_proba(args.prompt).items(), key=lambda kv: -kv[1]):
        print(f"{name}\t{p:.3f}")
    return 0


def _default_eval_dir(target: str) -> Path:
    from ft_plugin.evaluate.targets import is_run_dir

    if is_run_dir(target):
        return Path(target) / "eval"
    return Path("runs") / "eval" / target.replace(":", "-").replace("/", "--")


def _import_ratings(args: argparse.Namespace) -> int:
    import json

    from ft_plugin.evaluate.human import import_ratings

    try:
        human = import_ratings([Path(p) for p in args.import_ratings]).to_dict()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.target:
        from ft_plugin.evaluate.report import add_human_ratings

        folder = Path(args.output) if args.output else _default_eval_dir(args.target)
        print(f"ratings added to {add_human_ratings(folder, human)}")
    print(json.dumps(human, indent=2, ensure_ascii=False))
    return 0


def _push(args: argparse.Namespace) -> int:
    from ft_plugin.hub.publish import push_run

    private = None if args.private is None else args.private
    result = push_run(
        Path(args.run_dir), args.repo_id, private=private, revision=args.revision,
        create_pr=args.create_pr, merged=args.merged, commit_message=args.commit_message,
    )  # fmt: skip
    state = "pushed" if result.changed else "unchanged, no new commit"
    print(f"{result.repo_id}: {state} ({result.commit}) -> {result.url}")
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


def _add_configs_push(commands: argparse._SubParsersAction, kind: str) -> None:
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


def _ewc_fisher(args: argparse.Namespace) -> int:
    from ft_plugin.continual.ewc import FISHER_FILE, save_fisher
    from ft_plugin.continual.fisher import fisher_for_run

    run_dir = Path(args.run_dir)
    fisher, anchors = fisher_for_run(run_dir, samples=args.samples)
    save_fisher(run_dir, fisher, anchors)
    total = sum(float(f.sum()) for f in fisher.values())
    print(f"{run_dir / FISHER_FILE}: {len(fisher)} tensors, trace {total:.6g}")
    return 0


def _space(args: argparse.Namespace) -> int:
    from ft_plugin.space_launch import space_command

    return space_command(args)


def _train(args: argparse.Namespace) -> int:
    from ft_plugin.train.__main__ import train_from_cli

    return train_from_cli(args)


def _merge(args: argparse.Namespace) -> int:
    from ft_plugin.merge import merge_run

    output = merge_run(Path(args.run_dir), Path(args.output))
    print(f"merged weights -> {output}")
    return 0


def _add_data_file_arguments(parser: argparse.ArgumentParser) -> None:
    """How a user's own file is read: its columns and its encoding."""
    parser.add_argument(
        "--field", action="append", metavar="NAME=COLUMN",
        help="fill template field NAME from COLUMN (the recipe's field_NAME), e.g. "
        "--field instruction=ask; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--encoding", help="text encoding of the file (default: detected), e.g. gb18030"
    )


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key (dotted for nested keys, e.g. hub.private=false); repeatable",
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `ft-plugin train` and `python -m ft_plugin.train`."""
    parser.add_argument("recipe", help="builtin recipe name, recipe file, or hf://OWNER/REPO/PATH")
    _add_set(parser)
    parser.add_argument("--output-dir", help="run directory (default: the recipe's output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ft-plugin", description="Fine-tune LLMs for a domain from one YAML recipe."
    )
    parser.add_argument("--version", action="version", version=f"ft-plugin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a recipe into a run directory")
    add_train_arguments(train)
    train.set_defaults(handler=_train)

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

    push = commands.add_parser("push", help="publish a run to the Hub with its model card")
    push.add_argument("run_dir")
    push.add_argument("--repo-id", required=True, help="OWNER/NAME")
    visibility = push.add_mutually_exclusive_group()
    visibility.add_argument("--private", dest="private", action="store_true", default=None,
                            help="create the repo private (default: the recipe's hub.private, true)")  # fmt: skip
    visibility.add_argument(
        "--public", dest="private", action="store_false", help="create the repo public"
    )
    push.add_argument("--revision", help="branch to push to (created when missing)")
    push.add_argument(
        "--create-pr", action="store_true", help="open a pull request instead of committing"
    )
    push.add_argument(
        "--merged", action="store_true", help="push merged full weights instead of the adapter"
    )
    push.add_argument("--commit-message")
    push.set_defaults(handler=_push)

    merge = commands.add_parser("merge", help="merge an adapter into full weights")
    merge.add_argument(
        "run_dir", help="a run directory with a mergeable adapter (lora, dora, ia3, qlora)"
    )
    merge.add_argument("--output", required=True, help="folder for the merged safetensors model")
    merge.set_defaults(handler=_merge)

    recipes = commands.add_parser("recipes", help="list, show, validate recipes; print the schema")
    recipe_commands = recipes.add_subparsers(dest="action", required=True, metavar="ACTION")
    recipe_commands.add_parser("list", help="builtin and plugin recipes").set_defaults(
        handler=_recipes_list
    )
    show = recipe_commands.add_parser("show", help="print a recipe fully resolved")
    show.add_argument("recipe", help="name, path or hf:// reference")
    _add_set(show)
    show.set_defaults(handler=_recipes_show)
    validate = recipe_commands.add_parser("validate", help="check recipe files")
    validate.add_argument("paths", nargs="+", metavar="RECIPE")
    _add_set(validate)
    validate.set_defaults(handler=_recipes_validate)
    recipe_commands.add_parser("schema", help="the recipe JSON schema").set_defaults(
        handler=_recipes_schema
    )
    _add_configs_push(recipe_commands, "recipes")

    templates = commands.add_parser("templates", help="domain dataset templates")
    template_commands = templates.add_subparsers(dest="action", required=True, metavar="ACTION")
    template_commands.add_parser("list", help="builtin and plugin templates").set_defaults(
        handler=_templates_list
    )
    tshow = template_commands.add_parser("show", help="print a template")
    tshow.add_argument("name")
    tshow.set_defaults(handler=_templates_show)
    preview = template_commands.add_parser(
        "preview", help="the exact training text of a few rows, loss-carrying part marked « »"
    )
    preview.add_argument("name", help="template name, path or hf:// reference")
    preview.add_argument("--data", help="rows to render (default: the template's sample data)")
    preview.add_argument("-n", type=int, default=3, help="rows to show (default 3)")
    preview.add_argument(
        "--base-model", default="embedded:smollm2-135m-instruct", help="whose chat template"
    )
    preview.add_argument("--sequence-len", type=int, default=512, help="cut-off, as in the recipe")
    _add_data_file_arguments(preview)
    preview.set_defaults(handler=_templates_preview)
    _add_configs_push(template_commands, "templates")

    evaluation = commands.add_parser(
        "eval", help="evaluate a run or a base model: perplexity, BLEU/ROUGE, accuracy, latency"
    )
    evaluation.add_argument(
        "target", nargs="?", help="run directory, or base model (embedded:…, path, Hub id)"
    )
    evaluation.add_argument(
        "--data", help="rows to evaluate on (default: the run's held-out split)"
    )
    evaluation.add_argument("--template", help="template for --data (default: the run's)")
    evaluation.add_argument(
        "--type", choices=["alpaca", "chat_template", "completion"],
        help="row type of --data without a template (default: detected: messages -> "
        "chat_template, text -> completion, else alpaca)",
    )  # fmt: skip
    _add_data_file_arguments(evaluation)
    evaluation.add_argument(
        "--baseline", action="store_true", help="also evaluate the base model, side by side"
    )
    evaluation.add_argument(
        "--metrics",
        help="comma list: perplexity,bleu,chrf,rouge1,rouge2,rougeL,accuracy,macro_f1,latency",
    )
    evaluation.add_argument("--max-samples", type=int, default=200)
    evaluation.add_argument("--max-new-tokens", type=int, default=128)
    evaluation.add_argument("--scoring", choices=["loglik", "generate"], default="loglik",
                            help="classification: label log-likelihood (default) or parse generated text")  # fmt: skip
    evaluation.add_argument(
        "--price-per-hour", type=float, help="machine price, for cost per 1,000 requests"
    )
    evaluation.add_argument("--output", help="report folder (default: RUN_DIR/eval)")
    evaluation.add_argument(
        "--human-sheet", metavar="FILE.csv", help="write base and tuned answers for raters"
    )
    evaluation.add_argument(
        "--import-ratings", nargs="+", metavar="FILE.csv", help="aggregate filled sheets"
    )
    evaluation.add_argument(
        "--tasks",
        metavar="A.jsonl,B.jsonl",
        help="forgetting matrix over a run's stages, one task per stage",
    )
    evaluation.set_defaults(handler=_eval)

    from ft_plugin.space_launch import add_space_arguments

    space = commands.add_parser(
        "space", help="run the Gradio Space locally (TARGET…), or publish it (space push)"
    )
    add_space_arguments(space)
    space.set_defaults(handler=_space)

    route = commands.add_parser("route", help="which task adapter the router picks for a prompt")
    route.add_argument("run_dir")
    route.add_argument("prompt")
    route.set_defaults(handler=_route)

    data = commands.add_parser("data", help="clean, shape and report datasets")
    data_commands = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    prepare = data_commands.add_parser(
        "prepare",
        help="clean a dataset through a template: dedup, PII, balance, augment, topics, report",
    )
    prepare.add_argument(
        "recipe", nargs="?", help="clean this recipe's datasets (instead of --template/--input)"
    )
    prepare.add_argument("--template", help="template name, path or hf:// reference")
    prepare.add_argument(
        "--input",
        action="append",
        help="input file (jsonl/json/csv/tsv/parquet, builtin:NAME); repeatable",
    )
    prepare.add_argument("--output", required=True, help="cleaned rows, JSON Lines")
    prepare.add_argument("--report", help="report path (default: OUTPUT with .report.json)")
    pii = prepare.add_mutually_exclusive_group()
    pii.add_argument(
        "--pii",
        dest="pii",
        action="store_true",
        default=None,
        help="scrub PII (default: template's choice)",
    )
    pii.add_argument("--no-pii", dest="pii", action="store_false", help="keep PII")
    prepare.add_argument(
        "--near-dup",
        metavar="THRESHOLD|off",
        help="near-duplicate Jaccard threshold (default: template's)",
    )
    prepare.add_argument("--balance", choices=["none", "downsample", "oversample"], default="none")
    prepare.add_argument(
        "--target-ratio", type=float, default=1.0, help="smallest/largest class after balancing"
    )
    prepare.add_argument("--augment", metavar="KINDS", help="comma list: template, synonym")
    prepare.add_argument(
        "--topics", metavar="K|auto", help="cluster topics (TF-IDF + k-means) into the report"
    )
    prepare.add_argument("--sequence-len", type=int, default=512, help="for length statistics")
    _add_data_file_arguments(prepare)
    prepare.add_argument(
        "--tokenizer",
        default="embedded:smollm2-135m-instruct",
        help="base model whose tokenizer counts tokens, or none",
    )
    prepare.add_argument("--seed", type=int, default=42)
    _add_set(prepare)
    prepare.set_defaults(handler=_data_prepare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    from ft_plugin.noise import silence_third_party_noise

    silence_third_party_noise()
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
