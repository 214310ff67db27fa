"""Compare: the base and the tuned model answer one prompt side by side, with latency and
tokens/s; each comparison also becomes the Rate tab's blind pair."""

from types import SimpleNamespace
from typing import Any

import gradio as gr

from ..state import SpaceState
from ..ui import Ui, session_of, shown_errors


def _answer_column(label: str, slot: str) -> tuple[gr.Textbox, gr.Markdown]:
    with gr.Column():
        text = gr.Textbox(
            label=label,
            lines=8,
            interactive=False,
            elem_id=f"{slot}-answer",
            elem_classes="answer",
        )
        stats = gr.Markdown(elem_classes="stats", elem_id=f"{slot}-stats")
    return text, stats


def layout(state: SpaceState, ui: Ui) -> SimpleNamespace:
    limits = state.limits
    prompt = gr.Textbox(
        label="Prompt",
        lines=3,
        max_length=limits.max_prompt_chars,
        placeholder="Ask a question…",
        elem_id="compare-prompt",
    )
    gr.Examples(state.example_prompts(), inputs=[prompt], label="Example prompts")
    with gr.Accordion("Generation settings", open=False):
        max_new = gr.Slider(
            1, limits.max_new_tokens, limits.default_new_tokens, step=1, label="Max new tokens"
        )
        temperature = gr.Slider(
            0.0, limits.max_temperature, 0.0, step=0.05, label="Temperature (0 = greedy)"
        )
        top_p = gr.Slider(0.05, 1.0, 1.0, step=0.05, label="Top-p")
    button = gr.Button("Compare", variant="primary", elem_id="compare-button")
    with gr.Row():
        base_out, base_stats = _answer_column("Base model", "base")
        tuned_out, tuned_stats = _answer_column("Tuned model", "tuned")
    return SimpleNamespace(
        prompt=prompt,
        max_new=max_new,
        temperature=temperature,
        top_p=top_p,
        button=button,
        base_out=base_out,
        base_stats=base_stats,
        tuned_out=tuned_out,
        tuned_stats=tuned_stats,
    )


def settings_inputs(ui: Ui) -> list[Any]:
    """The generation settings as event inputs: max_new_tokens, temperature, top_p, adapter."""
    return [ui.compare.max_new, ui.compare.temperature, ui.compare.top_p, ui.adapter]


def connect(state: SpaceState, ui: Ui) -> None:
    @shown_errors
    def ui_compare(request: gr.Request, text, tokens, temp, p, label):  # noqa: ANN001, ANN202
        result = state.comparing.compare(text, max_new_tokens=tokens, temperature=temp,
                                         top_p=p, adapter=label, session=session_of(request))  # fmt: skip
        for note in result.notes:
            gr.Warning(note)
        blind = state.comparing.blind_pair(result)
        answers = (result.base.text, result.base.stats(), result.tuned.text, result.tuned.stats())
        pair = (blind, blind["prompt"], blind["answer_a"], blind["answer_b"], "")
        return *answers, *pair

    tab, rate = ui.compare, ui.rate
    outputs = [tab.base_out, tab.base_stats, tab.tuned_out, tab.tuned_stats]
    outputs += [ui.pair, rate.prompt, rate.answer_a, rate.answer_b, rate.status]
    gr.on(
        [tab.button.click, tab.prompt.submit],
        ui_compare,
        [tab.prompt, *settings_inputs(ui)],
        outputs,
        api_visibility="private",
        **ui.model_job,
    )
