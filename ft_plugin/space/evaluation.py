"""Evaluate, without Gradio: ft-plugin's evaluation (base vs tuned) of an uploaded file or
the template's sample, within the Space's caps, written as a report folder and a zip.

Example (usage, not run as a doctest: it needs a served model)::

    outcome = state.evaluation.evaluate(None, use_sample=True, max_rows=20)
    outcome.table()  # [[metric, base, tuned, delta], …]; outcome.archive is the zip
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from .loading import AdapterInfo
from .served import ServedModels
from .settings import DATA_SUFFIXES, Limits

REPORTS_KEPT = 8  # the latest report folders kept for download; older ones are deleted


@dataclass
class EvalOutcome:
    """One evaluation as the Evaluate tab and ``/evaluate`` show it."""

    report: dict[str, Any]  # EvalReport.to_dict(), sources named by file name only
    folder: Path  # report.json, report.md, *.png
    archive: Path  # the folder as a zip, for download
    plots: list[Path]
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def answers_table(self) -> list[list[Any]]:
        """Rows ``[row, prompt, reference, base, tuned, change]``: what each model said,
        with the change in the per-row score (ROUGE-L, else chrF) the report sorts by."""
        from ft_plugin.evaluate.predictions import showcase_score

        key = showcase_score(self.predictions)
        out = []
        for row in self.predictions:
            change = None
            if key and "base_scores" in row:
                change = round(row["tuned_scores"][key] - row["base_scores"][key], 2)
            base = row.get("base_answer", row.get("base_predicted"))
            tuned = row.get("tuned_answer", row.get("tuned_predicted"))
            out.append([row["id"], row["prompt"], row["reference"], base, tuned, change])
        return out

    def table(self) -> list[list[Any]]:
        """Rows ``[metric, base, tuned, delta]`` for every metric either model has."""
        models = self.report["models"]
        target, base = models.get("target", {}), models.get("baseline", {})
        names = list(dict.fromkeys([*target, *base]))
        return [[n, base.get(n), target.get(n), self.report["delta"].get(n)] for n in names]


class EvaluationService:
    """Evaluations of the served model, their reports written under ``work_dir``."""

    def __init__(self, models: ServedModels, work_dir: Path) -> None:
        self.models = models
        self.work_dir = Path(work_dir)

    @property
    def limits(self) -> Limits:
        return self.models.limits

    def evaluate(
        self,
        data_path: str | None = None,
        *,
        use_sample: bool = False,
        max_rows: int | None = None,
        adapter: str | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> EvalOutcome:
        """ft-plugin's evaluation (base vs tuned) of an uploaded file or the sample data."""
        from ft_plugin.evaluate.runner import EvalSettings, evaluate_loaded

        report_progress = progress or (lambda fraction, message: None)
        models = self.models
        info = models.adapter(adapter)
        data, shown = self._eval_data(info, data_path, use_sample)
        rows = self.limits.max_eval_rows if not max_rows else int(max_rows)
        rows = max(1, min(rows, self.limits.max_eval_rows))
        settings = EvalSettings(
            data=data,
            baseline=True,
            max_samples=rows,
            max_new_tokens=self.limits.eval_max_new_tokens,
            latency_samples=min(8, rows),
        )
        report_progress(0.1, f"Evaluating {info.label} and its base model on {shown}")
        with models.gate.slot(), models.using(info.label):
            target = dataclasses.replace(
                models.loaded,
                name=info.label,
                recipe=info.recipe,
                run_dir=info.run_dir,
                adapter_bytes=info.adapter_bytes,
            )
            report, results, eval_data = evaluate_loaded(target, settings)
        report_progress(0.9, "Writing the report")
        return self._write_report(
            report.to_dict(), shown, results, eval_data.labels, report.predictions
        )

    def _eval_data(
        self, info: AdapterInfo, data_path: str | None, use_sample: bool
    ) -> tuple[str, str]:
        """What to evaluate on and how to name it in the report (never the upload path)."""
        if use_sample:
            from ft_plugin.data.reading import builtin_sample_path

            if info.template is None:
                raise UserError(
                    f"{info.label} was trained without a domain template, so there is no "
                    "sample data: upload a file"
                )
            builtin_sample_path(info.template.name)  # a clear error when absent
            return f"builtin:{info.template.name}", f"builtin:{info.template.name}"
        if not data_path:
            raise UserError("data: upload a JSONL or CSV file, or choose the sample data")
        path = Path(data_path)
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise UserError(f"{path.name}: expected one of {', '.join(DATA_SUFFIXES)}")
        size_mb = path.stat().st_size / 2**20
        if size_mb > self.limits.max_upload_mb:
            raise UserError(
                f"{path.name}: {size_mb:.1f} MB is over the {self.limits.max_upload_mb} MB limit"
            )
        self._check_row_lengths(path)
        return str(path), path.name

    def _check_row_lengths(self, path: Path) -> None:
        """Refuse a row with a text longer than ``max_eval_row_chars`` (a 5 MB prompt
        would hold the model for minutes), naming the row and the column."""
        from ft_plugin.data.reading import read_rows

        cap = self.limits.max_eval_row_chars
        for number, row in enumerate(read_rows(str(path)), 1):
            for column, value in row.items():
                if _longest_text(value) > cap:
                    raise UserError(
                        f"{path.name}: row {number}, column {column}: longer than this "
                        f"Space's cap of {cap:,} characters a field"
                    )

    def _write_report(
        self, report: dict[str, Any], shown: str, results: Any, labels: Any, predictions: Any
    ) -> EvalOutcome:
        from ft_plugin.evaluate.report import write_eval_report

        report["data"]["source"] = shown  # not the server's upload path
        report["settings"]["data"] = shown
        folder = Path(tempfile.mkdtemp(prefix="eval-", dir=self.work_dir)) / "report"
        write_eval_report(report, folder, results=results, labels=labels, trainer_state=None,
                          predictions=predictions)  # fmt: skip
        archive = Path(shutil.make_archive(str(folder.parent / "evaluation-report"), "zip", folder))
        self._prune(prefix="eval-", keep=REPORTS_KEPT)
        return EvalOutcome(report, folder, archive, sorted(folder.glob("*.png")), predictions or [])

    def _prune(self, *, prefix: str, keep: int) -> None:
        old = sorted(self.work_dir.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime)[:-keep]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)


def _longest_text(value: Any) -> int:
    """The longest string in a cell (chat rows nest them in lists of dicts)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_text(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return max((_longest_text(v) for v in value), default=0)
    return 0
