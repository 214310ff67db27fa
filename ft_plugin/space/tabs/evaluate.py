"""Evaluate: ft-plugin's evaluation of an uploaded file or the template's sample, base vs
tuned, with plots and a downloadable report."""

from types import SimpleNamespace

import gradio as gr

from ..settings import DATA_SUFFIXES
from ..state import SpaceState
from ..ui import Ui, shown_errors

UPLOADED, SAMPLE = "uploaded file", "template sample"


def layout(state: SpaceState, ui: Ui) -> SimpleNamespace:
    limits = state.limits
    gr.Markdown(
        "Upload rows (JSONL, JSON, CSV, TSV or Parquet, in the shape of the run's "
        f"template) or use the template's sample; at most {limits.max_eval_rows} "
        "rows are evaluated, base vs tuned, with ft-plugin's metrics."
    )
    with gr.Row():
        file = gr.File(label="Data file", file_types=list(DATA_SUFFIXES), elem_id="eval-file")
        with gr.Column():
            has_sample = bool(state.adapters) and state.adapter().template is not None
            source = gr.Radio(
                [UPLOADED, SAMPLE],
                value=SAMPLE if has_sample else UPLOADED,
                label="Data",
                interactive=has_sample,
            )
            rows = gr.Slider(1, limits.max_eval_rows, limits.max_eval_rows, step=1, label="Rows")
            button = gr.Button("Evaluate", variant="primary", elem_id="eval-button")
    table = gr.Dataframe(
        headers=["metric", "base", "tuned", "delta"], label="Metrics", interactive=False
    )
    answers = gr.Dataframe(
        headers=["row", "prompt", "reference", "base", "tuned", "change"],
        label="Answers, side by side (change: tuned minus base, per-row ROUGE-L or chrF)",
        interactive=False, wrap=True, elem_id="eval-answers",
    )  # fmt: skip
    plots = gr.Gallery(label="Plots", columns=3, height=320)
    report = gr.File(label="Report (zip: report.json, report.md, plots)", interactive=False)
    return SimpleNamespace(file=file, source=source, rows=rows, button=button, table=table,
                           answers=answers, plots=plots, report=report)  # fmt: skip


def source_update(state: SpaceState, label: str | None) -> dict:
    """The data choice for an adapter: its template's sample when it has one."""
    has_sample = bool(state.adapters) and state.adapter(label).template is not None
    return gr.update(value=SAMPLE if has_sample else UPLOADED, interactive=has_sample)


def connect(state: SpaceState, ui: Ui) -> None:
    @shown_errors
    def ui_evaluate(upload, source, rows, label, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
        outcome = state.evaluation.evaluate(
            upload,
            use_sample=source == SAMPLE,
            max_rows=rows,
            adapter=label,
            progress=lambda fraction, message: progress(fraction, desc=message),
        )
        plots = [str(p) for p in outcome.plots]
        return outcome.table(), outcome.answers_table(), plots, str(outcome.archive)

    tab = ui.evaluate
    tab.file.upload(lambda: UPLOADED, None, tab.source, api_visibility="private", queue=False)
    tab.button.click(
        ui_evaluate,
        [tab.file, tab.source, tab.rows, ui.adapter],
        [tab.table, tab.answers, tab.plots, tab.report],
        api_visibility="private",
        **ui.model_job,
    )
