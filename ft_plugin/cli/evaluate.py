"""`ft-plugin eval` (one evaluation, ``--tasks`` forgetting, ``--import-ratings``) and
`ft-plugin route` (which task adapter a run's router picks)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ft_plugin.errors import UserError
from ft_plugin.evaluate.targets import EVAL_DTYPES

from .arguments import Commands, add_data_file_arguments


def add_parser(commands: Commands) -> None:
    """``eval`` and ``route``."""
    evaluation = commands.add_parser(
        "eval", help="evaluate a run or a base model: perplexity, BLEU/ROUGE, accuracy, latency"
    )
    _add_eval_arguments(evaluation)
    evaluation.set_defaults(handler=_eval)

    route = commands.add_parser("route", help="which task adapter the router picks for a prompt")
    route.add_argument("run_dir")
    route.add_argument("prompt")
    route.set_defaults(handler=_route)


def _add_eval_arguments(evaluation: argparse.ArgumentParser) -> None:
    add = evaluation.add_argument
    add("target", nargs="?", help="run directory, or base model (embedded:…, path, Hub id)")
    add("--data", help="rows to evaluate on (default: the run's held-out split)")
    add("--template", help="template for --data (default: the run's)")
    add(
        "--type",
        choices=["alpaca", "chat_template", "completion"],
        help="row type of --data without a template (default: detected: messages -> "
        "chat_template, text -> completion, else alpaca)",
    )
    add_data_file_arguments(evaluation)
    add(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also evaluate the base model, side by side (default: the run's eval.baseline)",
    )
    add(
        "--metrics",
        help="comma list: perplexity,bleu,chrf,rouge1,rouge2,rougeL,accuracy,macro_f1,latency",
    )
    add(
        "--max-samples",
        type=int,
        default=None,
        help="evaluate a seeded random sample of this many rows (default: the run's "
        "eval.max_samples, else 200); 0: all",
    )
    add(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="paired bootstrap resamples for the 95%% intervals (default 1000); 0: none",
    )
    add("--seed", type=int, default=0, help="of the row sample and the bootstrap (default 0)")
    add("--group-by", metavar="COLUMN", help="a column of --data: every metric per group")
    add(
        "--max-new-tokens",
        type=int,
        default=None,
        help="generation budget (default: the run's eval.max_new_tokens, else 128)",
    )
    add(
        "--generation-batch-size",
        type=int,
        default=1,
        metavar="N",
        help="answer N prompts at once for BLEU/ROUGE (left-padded; faster on many rows); "
        "latency is still timed one request at a time (default 1)",
    )
    add(
        "--dtype",
        choices=EVAL_DTYPES,
        default="float32",
        help="the weights' dtype while evaluating (default float32); bfloat16 runs faster on "
        "GPUs and on CPUs with AVX512-BF16 or AMX, at a perplexity within about 0.1%%",
    )
    add(
        "--scoring",
        choices=["loglik", "generate"],
        default="loglik",
        help="classification: label log-likelihood (default) or parse generated text",
    )
    add("--price-per-hour", type=float, help="machine price, for cost per 1,000 requests")
    add("--output", help="report folder (default: RUN_DIR/eval)")
    add("--human-sheet", metavar="FILE.csv", help="write base and tuned answers for raters")
    add("--import-ratings", nargs="+", metavar="FILE.csv", help="aggregate filled sheets")
    add(
        "--tasks",
        metavar="A.jsonl,B.jsonl",
        help="forgetting matrix over a run's stages, one task per stage",
    )


def _eval(args: argparse.Namespace) -> int:
    if args.import_ratings:
        return _import_ratings(args)
    if args.tasks:
        return _forgetting(args)
    if args.target is None:
        raise UserError(
            "eval: give TARGET (a run directory or a base model), or --import-ratings FILE"
        )
    from ft_plugin.evaluate.folder import evaluate_to_folder, fields_for
    from ft_plugin.evaluate.report import terminal_table
    from ft_plugin.evaluate.runner import EvalSettings
    from ft_plugin.rundir import PREDICTIONS

    if args.generation_batch_size < 1:
        raise UserError(f"--generation-batch-size {args.generation_batch_size}: give 1 or more")
    settings = EvalSettings(
        data=args.data,
        template=args.template,
        baseline=args.baseline,
        data_type=args.type,
        fields=fields_for(args.template, args.field),
        encoding=args.encoding,
        metrics=args.metrics.split(",") if args.metrics else None,
        max_samples=args.max_samples,
        max_new_tokens=args.max_new_tokens,
        generation_batch_size=args.generation_batch_size,
        scoring=args.scoring,
        dtype=args.dtype,
        price_per_hour=args.price_per_hour,
        bootstrap=args.bootstrap,
        seed=args.seed,
        group_by=args.group_by,
    )
    output = Path(args.output) if args.output else None
    sheet = Path(args.human_sheet) if args.human_sheet else None
    outcome = evaluate_to_folder(args.target, settings, output, sheet)
    if outcome.human_sheet is not None:
        print(f"human sheet: {args.human_sheet} (key: {outcome.human_key})")
    print(terminal_table(outcome.report))
    if groups := outcome.report.get("groups"):
        counts = ", ".join(f"{name} {entry['rows']}" for name, entry in groups.items())
        print(f"groups by {args.group_by} (rows): {counts}; per group in report.md")
    answers = outcome.folder / PREDICTIONS
    extra = f", answers in {PREDICTIONS}" if answers.is_file() else ""
    print(f"report: {outcome.markdown} (numbers in {outcome.numbers.name}{extra})")
    return 0


def _forgetting(args: argparse.Namespace) -> int:
    from ft_plugin.evaluate import sequence
    from ft_plugin.evaluate.runner import EvalSettings

    settings = EvalSettings(
        template=args.template, max_samples=args.max_samples, scoring=args.scoring
    )
    output = Path(args.output) if args.output else sequence.default_output_dir(args.target)
    report = sequence.forgetting_report(args.target, args.tasks.split(","), settings, output)
    keys = ("metric", "R", "baseline", "average_accuracy", "bwt", "fwt", "forgetting")
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    print(f"report: {output / sequence.REPORT_FILE} (+ {sequence.PLOT_FILE})")
    return 0


def _import_ratings(args: argparse.Namespace) -> int:
    from ft_plugin.evaluate.human import import_ratings

    try:
        human = import_ratings([Path(p) for p in args.import_ratings]).to_dict()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.target:
        from ft_plugin.evaluate.folder import default_output_dir
        from ft_plugin.evaluate.report import add_human_ratings

        folder = Path(args.output) if args.output else default_output_dir(args.target)
        print(f"ratings added to {add_human_ratings(folder, human)}")
    print(json.dumps(human, indent=2, ensure_ascii=False))
    return 0


def _route(args: argparse.Namespace) -> int:
    from ft_plugin.continual.router import load_run_router

    router = load_run_router(args.run_dir)
    for name, p in sorted(router.route_proba(args.prompt).items(), key=lambda kv: -kv[1]):
        print(f"{name}\t{p:.3f}")
    return 0
