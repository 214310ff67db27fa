"""An evaluation written to its folder: report.json, report.md, plots, predictions and the
blind human sheet (`ft-plugin eval`'s output); ``runner.py`` computes what goes in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .dataset import EvalData, EvalSettings, with_recipe_defaults
from .runner import ModelResult, run_evaluation
from .targets import LoadedTarget


def human_sheet_items(
    loaded: LoadedTarget, data: EvalData, results: dict[str, ModelResult], settings: EvalSettings
) -> list[dict[str, str]]:
    """Prompts with base and tuned answers (generating the ones not made yet) for raters."""
    from .generation import generate_answers

    settings = with_recipe_defaults(settings, loaded.recipe)
    chat = [e for e in data.examples if "prompt" in e]
    for role, result in results.items():
        if result.answers is None:
            if role == "baseline":
                with loaded.baseline() as model:
                    result.answers = generate_answers(
                        model, loaded.tokenizer, chat, max_new_tokens=settings.max_new_tokens,
                        desc=f"generating: {role}",
                    ).texts  # fmt: skip
            else:
                result.answers = generate_answers(
                    loaded.model, loaded.tokenizer, chat, max_new_tokens=settings.max_new_tokens,
                    desc=f"generating: {role}",
                ).texts  # fmt: skip
    pairs = zip(chat, results["baseline"].answers, results["target"].answers, strict=True)
    return [
        {"prompt": e["prompt"][-1]["content"], "base_answer": b, "tuned_answer": t}
        for e, b, t in pairs
    ]


def fields_for(template: str | None, field_pairs: list[str] | None) -> dict[str, str]:
    """``--field NAME=COLUMN`` of eval: the template's field names when ``template`` is a
    domain template, the row type's (instruction, output, text, …) otherwise.

    Example:
        >>> fields_for("medical", ["instruction=ask"]), fields_for(None, ["text=body"])
        ({'instruction': 'ask'}, {'text': 'body'})
    """
    from ft_plugin.data import columns
    from ft_plugin.data.formats import CONVERTERS

    if template and template not in CONVERTERS:
        from ft_plugin.data.templates import load_template

        return columns.parse_field_arguments(field_pairs, load_template(template))
    return columns.parse_plain_field_arguments(field_pairs)


def default_output_dir(target: str) -> Path:
    """Where a report of ``target`` goes: RUN_DIR/eval, or runs/eval/NAME for a base model.

    Example:
        >>> default_output_dir("embedded:smollm2-135m-instruct").as_posix()
        'runs/eval/embedded-smollm2-135m-instruct'
    """
    from ft_plugin.rundir import RunDir

    run = RunDir(target)
    if run.is_run():
        return run.eval_dir()
    return Path("runs") / "eval" / target.replace(":", "-").replace("/", "--")


@dataclass
class EvalOutcome:
    """What an evaluation wrote: the report (as a dict), its folder and the human sheet."""

    report: dict[str, Any]
    folder: Path
    markdown: Path  # report.md
    numbers: Path  # report.json
    human_sheet: Path | None = None
    human_key: Path | None = None


def evaluate_to_folder(
    target: str, settings: EvalSettings, output: Path | None = None, human_sheet: Path | None = None
) -> EvalOutcome:
    """Evaluate ``target`` and write report.json, report.md and plots into ``output``
    (default: `default_output_dir`); with ``human_sheet``, also a blind sheet for raters
    (which needs the baseline, so it is evaluated too).

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        evaluate_to_folder("runs/medical-lora", EvalSettings(baseline=True)).markdown
    """
    from ft_plugin.rundir import REPORT, RunDir

    from .report import write_eval_report

    if human_sheet is not None:
        settings = replace(settings, baseline=True)
    report, results, loaded, data = run_evaluation(target, settings)
    folder = output or default_output_dir(target)
    state = RunDir(loaded.run_dir).trainer_state_path if loaded.run_dir else None
    write_eval_report(report.to_dict(), folder, results=results, labels=data.labels,
                      trainer_state=state, predictions=report.predictions)  # fmt: skip
    outcome = EvalOutcome(report.to_dict(), folder, folder / "report.md", folder / REPORT)
    if human_sheet is not None:
        from .human import key_path_for, write_human_sheet

        write_human_sheet(human_sheet_items(loaded, data, results, settings), human_sheet)
        outcome.human_sheet, outcome.human_key = human_sheet, key_path_for(human_sheet)
    return outcome
