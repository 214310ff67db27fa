"""Model card: the adapter's card, its training metrics and loss curves."""

from types import SimpleNamespace

import gradio as gr

from ..served import NO_MODEL
from ..state import SpaceState
from ..ui import Ui
from .evaluate import source_update


def layout(state: SpaceState, ui: Ui) -> SimpleNamespace:
    with gr.Row():
        metrics = gr.Dataframe(
            headers=["metric", "value"], label="Training metrics", interactive=False
        )
        curves = gr.Image(label="Training curves", type="filepath", interactive=False)
    markdown = gr.Markdown(elem_id="model-card")
    return SimpleNamespace(metrics=metrics, curves=curves, markdown=markdown)


def connect(state: SpaceState, ui: Ui) -> None:
    def ui_card(label):  # noqa: ANN001, ANN202
        if not state.adapters:
            return NO_MODEL, [], None, source_update(state, None)
        info = state.adapter(label)
        metrics = [[k, v] for k, v in state.card.training_metrics(info.label).items()]
        curve = state.card.training_curves(info.label)
        card = state.card.markdown(info.label)
        return card, metrics, str(curve) if curve else None, source_update(state, info.label)

    tab = ui.card
    outputs = [tab.markdown, tab.metrics, tab.curves, ui.evaluate.source]
    ui.adapter.change(ui_card, [ui.adapter], outputs, api_visibility="private", queue=False)
    ui.demo.load(ui_card, [ui.adapter], outputs, api_visibility="private", queue=False)
