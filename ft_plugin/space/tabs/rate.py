"""Rate: two answers to one prompt in random order (which model wrote which is not shown),
scored 1-5 each, and a preference; saved to ratings.jsonl."""

import logging
from types import SimpleNamespace

import gradio as gr

from ft_plugin.errors import UserError

from ..ratings import CRITERIA, SCORE_FIELDS, summary_markdown, with_push_notice
from ..state import SpaceState
from ..ui import Ui, session_of, shown_errors
from .compare import settings_inputs

LOG = logging.getLogger("ft_plugin.space")


def _answer_column(slot: str) -> dict[str, gr.Component]:
    fields = {}
    with gr.Column():
        fields[f"answer_{slot}"] = gr.Textbox(
            label=f"Answer {slot.upper()}",
            lines=8,
            interactive=False,
            elem_id=f"rate-answer-{slot}",
        )
        for criterion in CRITERIA:
            fields[f"{criterion}_{slot}"] = gr.Radio(
                [1, 2, 3, 4, 5],
                label=f"{criterion.capitalize()} of {slot.upper()}",
                elem_id=f"rate-{criterion}-{slot}",
            )
    return fields


def layout(state: SpaceState, ui: Ui) -> SimpleNamespace:
    gr.Markdown(
        "Two answers to one prompt, in random order: which model wrote which is "
        "not shown. Score each from 1 (poor) to 5 (excellent). The pair comes from "
        "your last comparison, or draw a new one for the prompt below (blind)."
    )
    prompt = gr.Textbox(
        label="Prompt", lines=2, elem_id="rate-prompt", max_length=state.limits.max_prompt_chars
    )
    new_pair = gr.Button("New blind pair for this prompt", elem_id="new-pair")
    fields = {}
    with gr.Row():
        for slot in ("a", "b"):
            fields.update(_answer_column(slot))
    preference = gr.Radio(
        ["A", "B", "Tie"], label="Which answer is better?", elem_id="rate-preference"
    )
    button = gr.Button("Submit rating", variant="primary", elem_id="rate-button")
    status = gr.Markdown(elem_id="rate-status")
    summary = gr.Markdown(elem_id="rate-summary")
    return SimpleNamespace(
        prompt=prompt,
        new_pair=new_pair,
        scores=[fields[name] for name in SCORE_FIELDS],
        answer_a=fields["answer_a"],
        answer_b=fields["answer_b"],
        preference=preference,
        button=button,
        status=status,
        summary=summary,
    )


def _summary(state: SpaceState) -> str:
    return with_push_notice(state.rating, summary_markdown(state.rating.summary()))


def connect(state: SpaceState, ui: Ui) -> None:
    tab = ui.rate

    @shown_errors
    def ui_new_pair(request: gr.Request, text, tokens, temp, p, label):  # noqa: ANN001, ANN202
        result = state.comparing.compare(text, max_new_tokens=tokens, temperature=temp,
                                         top_p=p, adapter=label, session=session_of(request))  # fmt: skip
        blind = state.comparing.blind_pair(result)
        return blind, blind["answer_a"], blind["answer_b"], ""

    tab.new_pair.click(
        ui_new_pair,
        [tab.prompt, *settings_inputs(ui)],
        [ui.pair, tab.answer_a, tab.answer_b, tab.status],
        api_visibility="private",
        **ui.model_job,
    )

    @shown_errors
    def ui_rate(request: gr.Request, current, *values):  # noqa: ANN001, ANN202
        if not current:
            raise UserError("no pair to rate: compare a prompt or draw a new blind pair")
        *scores, choice = values
        record = state.rating.rate(
            prompt=current["prompt"],
            answer_a=current["answer_a"],
            answer_b=current["answer_b"],
            scores=dict(zip(SCORE_FIELDS, scores, strict=True)),
            preference=choice or "",
            tuned=current["tuned"],
            adapter=current["adapter"],
            source="ui",
            session=session_of(request),
        )
        count = state.rating.summary()["ratings"]
        LOG.info("rating %s saved", record["id"])
        # one rating per pair: clear the pair, its answers and the scores
        # (distinct dicts: Gradio consumes each update it applies)
        cleared = [gr.update(value=None) for _ in range(len(tab.scores) + 1)]
        status = f"Rating saved ({count} so far). Thank you!"
        return status, _summary(state), None, "", "", *cleared

    outputs = [tab.status, tab.summary, ui.pair, tab.answer_a, tab.answer_b]
    tab.button.click(
        ui_rate,
        [ui.pair, *tab.scores, tab.preference],
        [*outputs, *tab.scores, tab.preference],
        api_visibility="private",
        queue=False,  # no model work: a busy model queue must not refuse a rating
    )
    ui.demo.load(
        lambda: _summary(state), None, [tab.summary], api_visibility="private", queue=False
    )
