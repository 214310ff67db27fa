"""The Train tab's "Train on ratings" button: DPO from the adapter chosen at the top of the
page, on the pairs the Rate tab has collected for it (owner only, like every job)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from ..state import SpaceState
from ..ui import Ui, caller_of, shown_errors


def connect(state: SpaceState, ui: Ui, tab: SimpleNamespace) -> None:
    run = tab.run

    @shown_errors
    def ui_train_on_ratings(request: gr.Request, profile: gr.OAuthProfile | None, label):  # noqa: ANN001, ANN202
        caller = caller_of(state.access, request, profile)
        served = state.adapter(label)
        return state.training.start_on_ratings(caller, served, state.rating.read())

    run.ratings.click(ui_train_on_ratings, [ui.adapter], [run.run_id], api_visibility="private",
                      queue=False)  # fmt: skip
