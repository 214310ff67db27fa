"""Forgetting after a sequence of runs: the R[k][i] matrix, BWT, FWT, average accuracy.

`ft-plugin eval RUN_DIR --tasks A.jsonl,B.jsonl` evaluates the model after each stage k
(the stages of a multi-stage run, or a comma-separated list of run directories) on each
task i, plus the untrained base model (for forward transfer), with one metric: accuracy
for classification templates, else perplexity (lower is better).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from .runner import EvalSettings, evaluate_loaded
from .targets import load_target

REPORT_FILE = "forgetting.json"
PLOT_FILE = "forgetting.png"


def default_output_dir(target: str) -> Path:
    """Where the forgetting report of ``target`` (RUN or RUN1,RUN2,…) goes: FIRST_RUN/eval/forgetting.

    Example:
        >>> default_output_dir("runs/a,runs/b").as_posix()
        'runs/a/eval/forgetting'
    """
    from ft_plugin.rundir import RunDir

    return RunDir(target.split(",")[0]).eval_dir() / "forgetting"


def stage_dirs(target: str) -> list[Path]:
    """The run directories of a sequence, in training order."""
    if "," in target:
        return [Path(p) for p in target.split(",") if p]
    from ft_plugin.rundir import RunDir

    root = RunDir(target)
    recipe = root.load_recipe().recipe if root.is_run() else None
    if recipe is None or not recipe.stages:
        raise UserError(
            f"{target}: --tasks needs a multi-stage run directory or RUN1,RUN2,… in training order"
        )
    return [root.stage(stage.name).path for stage in recipe.stages]


def _score(
    loaded: Any, settings: EvalSettings, task: str, metric: str, baseline: bool = False
) -> float:
    task_settings = replace(settings, data=task, metrics=[metric], baseline=False)
    if baseline:
        with loaded.baseline() as base:
            view = replace(loaded, model=base)
            report, _, _ = evaluate_loaded(view, task_settings)
    else:
        report, _, _ = evaluate_loaded(loaded, task_settings)
    return float(report.models["target"][metric])


def forgetting_report(
    target: str, tasks: list[str], settings: EvalSettings, output: Path
) -> dict[str, Any]:
    """Evaluate every stage on every task; write forgetting.json, .md and the matrix plot."""
    from ft_plugin.continual.forgetting import forgetting_metrics, plot_forgetting_matrix

    stages = stage_dirs(target)
    if len(stages) != len(tasks):
        raise UserError(
            f"--tasks: {len(tasks)} tasks for {len(stages)} stages; give one task per stage, in order"
        )
    matrix: list[list[float]] = []
    baseline: list[float] = []
    metric = "perplexity"
    for k, stage in enumerate(stages):
        loaded = load_target(str(stage), with_baseline=(k == 0))
        if k == 0:
            from .runner import evaluation_data, with_recipe_defaults

            task_settings = with_recipe_defaults(replace(settings, data=tasks[0]), loaded.recipe)
            data = evaluation_data(loaded, task_settings)
            metric = "accuracy" if data.labels else "perplexity"
            baseline = [_score(loaded, settings, task, metric, baseline=True) for task in tasks]
        matrix.append([_score(loaded, settings, task, metric) for task in tasks])
    summary = forgetting_metrics(matrix, baseline, higher_is_better=metric != "perplexity")
    report = {"metric": metric, "stages": [str(s) for s in stages], "tasks": tasks, "R": matrix,
              "baseline": baseline, **summary}  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    (output / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    plot_forgetting_matrix(matrix, [s.name for s in stages], [Path(t).stem for t in tasks],
                           output / PLOT_FILE, metric, higher_is_better=metric != "perplexity")  # fmt: skip
    return report
