"""The Space's named API (``gradio_client.Client(url).view_api()``): /compare, /rate and
/evaluate. Every name, signature, default and docstring here is the public contract.

No ``from __future__ import annotations`` here: ``gr.api`` reads the real type hints of
the endpoint functions.
"""

import gradio as gr

from .service import SpaceState
from .settings import DATA_SUFFIXES
from .ui import Ui, shown_errors


def add_compare(state: SpaceState, ui: Ui) -> None:
    default_tokens = state.limits.default_new_tokens

    @shown_errors
    def compare(
        prompt: str,
        max_new_tokens: int = default_tokens,
        temperature: float = 0.0,
        top_p: float = 1.0,
        adapter: str = "",
    ) -> tuple[str, str]:
        """Base and tuned answers to one prompt: (base_answer, tuned_answer).

        max_new_tokens above the Space's cap is clamped to the cap; temperature 0 is
        greedy decoding; adapter picks one of several loaded adapters (default: first).
        """
        result = state.compare(
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            adapter=adapter or None,
        )
        for note in result.notes:
            gr.Warning(note)
        return result.base.text, result.tuned.text

    gr.api(compare, api_name="compare", **ui.model_job)


def add_rate(state: SpaceState, ui: Ui) -> None:
    @shown_errors
    def rate(
        prompt: str,
        answer_a: str,
        answer_b: str,
        relevance: int,
        accuracy: int,
        readability: int,
        preference: str,
        tuned: str = "b",
        adapter: str = "",
        relevance_a: int | None = None,
        accuracy_a: int | None = None,
        readability_a: int | None = None,
        relevance_b: int | None = None,
        accuracy_b: int | None = None,
        readability_b: int | None = None,
    ) -> str:
        """Record one rating in ratings.jsonl: relevance, accuracy and readability of
        the pair (integers 1-5) and the preference "a", "b" or "tie"; tuned says which
        answer came from the tuned model (default "b"). Optional: the six per-answer
        scores relevance_a … readability_b, all or none."""
        scores = {"relevance": relevance, "accuracy": accuracy, "readability": readability}
        scores |= {"relevance_a": relevance_a, "accuracy_a": accuracy_a}
        scores |= {"readability_a": readability_a, "relevance_b": relevance_b}
        scores |= {"accuracy_b": accuracy_b, "readability_b": readability_b}
        record = state.rate(
            prompt=prompt,
            answer_a=answer_a,
            answer_b=answer_b,
            preference=preference,
            scores=scores,
            tuned=tuned,
            adapter=adapter or None,
            source="api",
        )
        return f"rating {record['id']} saved; preferred: {record['preferred']}"

    gr.api(rate, api_name="rate")


def add_evaluate(state: SpaceState, ui: Ui) -> None:
    # API-only components (hidden): /evaluate takes a real uploaded file, so that
    # Gradio checks it came through the upload route.
    with gr.Column(visible=False):
        api_file = gr.File(label="file", file_types=list(DATA_SUFFIXES))
        api_report = gr.JSON(label="report")
        api_button = gr.Button("evaluate")

    @shown_errors
    def evaluate(file, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
        """Evaluate base vs tuned on an uploaded file; returns the report as JSON."""
        outcome = state.evaluate(
            file, progress=lambda fraction, message: progress(fraction, desc=message)
        )
        return outcome.report

    api_button.click(evaluate, [api_file], [api_report], api_name="evaluate", **ui.model_job)


def add_api(state: SpaceState, ui: Ui) -> None:
    """The named endpoints, after the page's own (private) events."""
    add_compare(state, ui)
    add_rate(state, ui)
    add_evaluate(state, ui)
