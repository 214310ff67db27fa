"""`ft-plugin data prepare`: clean and report datasets, from files or a recipe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.config.options import add_set
from ft_plugin.errors import UserError

from .arguments import Commands, add_data_file_arguments

if TYPE_CHECKING:
    from ft_plugin.data.jobs import PrepareJob
    from ft_plugin.data.prepare import PrepareOptions, PrepareResult


def add_parser(commands: Commands) -> None:
    """``data`` and its actions."""
    data = commands.add_parser("data", help="clean, shape and report datasets")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    prepare = actions.add_parser(
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
    _add_cleaning_arguments(prepare)
    prepare.add_argument("--sequence-len", type=int, default=512, help="for length statistics")
    add_data_file_arguments(prepare)
    prepare.add_argument(
        "--tokenizer",
        default="embedded:smollm2-135m-instruct",
        help="base model whose tokenizer counts tokens, or none",
    )
    prepare.add_argument("--seed", type=int, default=42)
    add_set(prepare)
    prepare.set_defaults(handler=_prepare)
    _add_preferences_parser(actions)


def _add_preferences_parser(actions: argparse._SubParsersAction) -> None:
    pairs = actions.add_parser(
        "preferences",
        help="build preference pairs for rl: dpo from Space ratings, rating sheets or a model",
        description="Pairs in Axolotl's chat_template.default shape (messages, chosen, "
        "rejected), with OUTPUT.report.json: rows in, pairs out, and why rows were dropped.",
    )
    pairs.add_argument(
        "--from", dest="source", required=True, action="append", metavar="SOURCE",
        help="a Space's data folder or ratings.jsonl; filled rating sheets (.csv, repeatable); "
        "or, with --rejected-from, SFT rows (a file or builtin:NAME)",
    )  # fmt: skip
    pairs.add_argument("--output", required=True, help="pairs, JSON Lines")
    pairs.add_argument("--adapter", help="ratings: only those of this served adapter")
    pairs.add_argument("--key", help="rating sheets: the key file (default: SHEET.key.csv)")
    pairs.add_argument(
        "--rejected-from", metavar="RUN_OR_MODEL",
        help="SFT rows: the reference answer is chosen, this model's greedy answer rejected",
    )  # fmt: skip
    pairs.add_argument("--type", default="alpaca", help="SFT rows: row type or template")
    pairs.add_argument("--max-samples", type=int, help="SFT rows: answer at most this many")
    pairs.add_argument("--max-new-tokens", type=int, default=256)
    pairs.add_argument("--generation-batch-size", type=int, default=1)
    pairs.add_argument("--seed", type=int, default=42)
    add_data_file_arguments(pairs)
    pairs.set_defaults(handler=_preferences)


def _preferences(args: argparse.Namespace) -> int:
    from ft_plugin.evaluate import preference_pairs as build

    if sheets := [s for s in args.source if s.lower().endswith((".xls", ".ods"))]:
        raise UserError(f"--from {sheets[0]}: rating sheets are read as CSV or .xlsx; save it "
                        "from the spreadsheet as .xlsx or CSV (UTF-8) and pass that file")  # fmt: skip
    try:
        if args.rejected_from:
            pairs = build.pairs_from_model(_sft_rows(args), build.ModelAnswers(
                args.rejected_from, args.max_samples, args.max_new_tokens,
                args.generation_batch_size, args.seed))  # fmt: skip
        elif all(s.lower().endswith((".csv", ".xlsx")) for s in args.source):
            pairs = build.pairs_from_sheets(args.source, args.key)
        elif len(args.source) == 1:
            pairs = build.pairs_from_ratings(args.source[0], args.adapter)
        else:
            raise UserError("--from: give one Space data folder or ratings.jsonl, or rating "
                            "sheets (.csv, .xlsx)")  # fmt: skip
    except ValueError as exc:  # a sheet's bad cell, as file.csv:ROW: column: why
        raise UserError(str(exc)) from None
    output, report = build.write_pairs(pairs, args.output)
    dropped = ", ".join(f"{k} {v}" for k, v in pairs.dropped.items()) or "none"
    print(f"{output}: {pairs.rows_in} rows in, {len(pairs.pairs)} pairs out (dropped: {dropped})")
    print(f"report: {report}")
    print("train on them with: rl: dpo, and datasets: [{path: "
          f"{output}, type: chat_template.default}}]")  # fmt: skip
    return 0


def _sft_rows(args: argparse.Namespace) -> Any:
    """The `--from` file as a recipe's dataset entry: type, --field columns, encoding."""
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data.columns import dataset_field_keys

    if len(args.source) != 1:
        raise UserError("--rejected-from: give one file of SFT rows with --from")
    fields = dataset_field_keys(args.type, args.field)
    try:
        return DatasetSection(path=args.source[0], type=args.type, encoding=args.encoding, **fields)
    except ValueError as exc:
        raise UserError(f"--field: {str(exc).splitlines()[-1]}") from None


def _add_cleaning_arguments(prepare: argparse.ArgumentParser) -> None:
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


def _prepare(args: argparse.Namespace) -> int:
    from ft_plugin.data.jobs import job_outputs, run_job

    jobs = _jobs(args)
    tokenizer = None
    if args.tokenizer != "none":
        from ft_plugin.models import base_tokenizer

        tokenizer = base_tokenizer(args.tokenizer)
    options = _options(args)
    report_path = Path(args.report) if args.report and len(jobs) == 1 else None
    for job, output in zip(jobs, job_outputs(Path(args.output), len(jobs)), strict=True):
        result = run_job(job, output, options, tokenizer=tokenizer, report_path=report_path)
        _print_result(result)
    return 0


def _jobs(args: argparse.Namespace) -> list[PrepareJob]:
    """From --template/--input (with --field, --encoding), or a recipe's datasets."""
    from ft_plugin.config import parse_set_options
    from ft_plugin.data.jobs import jobs_for_files, jobs_for_recipe

    if args.recipe is None:
        return jobs_for_files(args.template, args.input, args.field, args.encoding)
    if args.field or args.encoding:
        raise UserError("data prepare RECIPE: set field_* and encoding: in the recipe's datasets")
    return jobs_for_recipe(args.recipe, parse_set_options(args.set))


def _options(args: argparse.Namespace) -> PrepareOptions:
    """The cleaning flags as `PrepareOptions` (each job adds its fields and encoding)."""
    from ft_plugin.data.prepare import PrepareOptions

    near_dup = args.near_dup
    topics = args.topics
    return PrepareOptions(
        scrub_pii=args.pii,
        near_dup_threshold=(
            "template" if near_dup is None else None if near_dup == "off" else float(near_dup)
        ),
        balance=args.balance,
        target_ratio=args.target_ratio,
        augment=[k for k in (args.augment or "").split(",") if k],
        topics=None if topics is None else topics if topics == "auto" else int(topics),
        sequence_len=args.sequence_len,
        seed=args.seed,
    )


def _print_result(result: PrepareResult) -> None:
    from ft_plugin.data.lengths import length_advice

    r = result.report
    dropped = ", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "none"
    encodings = ", ".join(sorted({e for e in r["encodings"].values() if e})) or "-"
    print(
        f"{result.output}: {r['input_rows']} rows in, {r['output_rows']} out "
        f"(dropped: {dropped}); encoding {encodings}"
    )
    if r.get("length_tokens") and (advice := length_advice(r["length_tokens"], "--sequence-len")):
        print(f"note: {advice}", file=sys.stderr)
    print(f"report: {result.report_path} (+ .md, .png)")
