"""The Space's named API (``gradio_client.Client(url).view_api()``): /compare, /rate,
/evaluate for everyone; /train_start, /train_status, /train_stop, /train_resume and
/train_serve for the Space's owner (the service refuses the others, :mod:`.access`).
Every name, signature, default and docstring here is the public contract.

Model work (/compare, /evaluate) is admitted by the service (``ModelGate``): at most
``max_queue`` requests running or waiting, the rest refused at once, so that a busy Space
still answers ratings and the owner's status.

No ``from __future__ import annotations`` here: ``gr.api`` reads the real type hints of
the endpoint functions.
"""

import gradio as gr

from .settings import DATA_SUFFIXES
from .state import SpaceState
from .ui import Ui, caller_of, session_of, shown_errors


def add_compare(state: SpaceState, ui: Ui) -> None:
    default_tokens = state.limits.default_new_tokens

    @shown_errors
    def compare(
        prompt: str,
        max_new_tokens: int = default_tokens,
        temperature: float = 0.0,
        top_p: float = 1.0,
        adapter: str = "",
        request: gr.Request = None,
    ) -> tuple[str, str]:
        """Base and tuned answers to one prompt: (base_answer, tuned_answer).

        max_new_tokens above the Space's cap is clamped to the cap; temperature 0 is
        greedy decoding; adapter picks one of several loaded adapters (default: first).
        The pair can then be rated once with /rate by the same client.
        """
        result = state.comparing.compare(
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            adapter=adapter or None,
            session=session_of(request),
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
        request: gr.Request = None,
    ) -> str:
        """Record one rating in ratings.jsonl: relevance, accuracy and readability of
        the pair (integers 1-5) and the preference "a", "b" or "tie"; tuned says which
        answer came from the tuned model (default "b"). Optional: the six per-answer
        scores relevance_a … readability_b, all or none. Only a pair this client got
        from /compare (within the hour) is accepted, once."""
        scores = {"relevance": relevance, "accuracy": accuracy, "readability": readability}
        scores |= {"relevance_a": relevance_a, "accuracy_a": accuracy_a}
        scores |= {"readability_a": readability_a, "relevance_b": relevance_b}
        scores |= {"accuracy_b": accuracy_b, "readability_b": readability_b}
        record = state.rating.rate(
            prompt=prompt,
            answer_a=answer_a,
            answer_b=answer_b,
            preference=preference,
            scores=scores,
            tuned=tuned,
            adapter=adapter or None,
            source="api",
            session=session_of(request),
        )
        return f"rating {record['id']} saved; preferred: {record['preferred']}"

    gr.api(rate, api_name="rate", queue=False)


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
        outcome = state.evaluation.evaluate(
            file, progress=lambda fraction, message: progress(fraction, desc=message)
        )
        return outcome.report

    api_button.click(evaluate, [api_file], [api_report], api_name="evaluate", **ui.model_job)


def add_train(state: SpaceState, ui: Ui) -> None:
    """/train_start (the owner's)."""
    # /train_start takes a real uploaded file (hidden components, as /evaluate does).
    with gr.Column(visible=False):
        api_file = gr.File(label="file", file_types=list(DATA_SUFFIXES))
        texts = [
            gr.Textbox(label=name)
            for name in ("template", "fields", "method", "base_model", "overrides")
        ]
        api_run_id = gr.Textbox(label="run_id")
        api_button = gr.Button("train_start")

    @shown_errors
    def train_start(file, template, fields, method, base_model, overrides,  # noqa: ANN001, ANN202
                    request: gr.Request, profile: gr.OAuthProfile | None):  # fmt: skip
        """Start (or queue) a training (the Space's owner only): file (CSV, TSV, JSON,
        JSONL or Parquet; none: the template's sample), template name, fields as a JSON
        object string mapping the template's fields to the file's columns
        ({"instruction": "ask", "output": "answer"}), method (a registered one: lora,
        qlora, dora, ia3, llama-adapter, bottleneck, freeze, full, or a plugin's), base
        model (one of the Space's base_models; default
        embedded:smollm2-135m-instruct) and recipe overrides as a JSON object string of
        the keys the Space allows ({"max_steps": 5}). Returns the run id."""
        from .training.data import parse_mapping
        from .training.recipe import DEFAULT_BASE, TrainRequest, parse_overrides

        caller = caller_of(state.access, request, profile)
        state.access.require_owner(caller, "train")  # before reading anything sent
        return state.training.start(caller, TrainRequest(
            data=str(file) if file else "", template=template, fields=parse_mapping(fields),
            method=method or "lora", base_model=base_model or DEFAULT_BASE,
            overrides=parse_overrides(overrides),
        ))  # fmt: skip

    api_button.click(
        train_start, [api_file, *texts], [api_run_id], api_name="train_start", queue=False
    )


def add_train_jobs(state: SpaceState, ui: Ui) -> None:
    """/train_on_ratings, /train_status, /train_stop, /train_resume, /train_serve: the
    owner's, by run id."""

    @shown_errors
    def train_status(run_id: str, request: gr.Request, profile: gr.OAuthProfile | None) -> dict:
        """A training's state (queued, running, stopping, stopped, failed, done), step,
        max_steps, loss / eval_loss / learning_rate as [step, value] lists,
        tokens_per_second, peak_memory_mb, eta_seconds, queue_position, error, log_tail,
        run_dir, metrics (the Space's owner only)."""
        return state.training.status(caller_of(state.access, request, profile), run_id)

    @shown_errors
    def train_stop(run_id: str, request: gr.Request, profile: gr.OAuthProfile | None) -> dict:
        """Stop a training (a checkpoint is kept; train_resume continues); its status."""
        return state.training.stop(caller_of(state.access, request, profile), run_id)

    @shown_errors
    def train_resume(run_id: str, request: gr.Request, profile: gr.OAuthProfile | None) -> dict:
        """Continue a stopped or failed training from its latest checkpoint; its status."""
        return state.training.resume(caller_of(state.access, request, profile), run_id)

    @shown_errors
    def train_serve(
        run_id: str,
        replace: bool = False,
        request: gr.Request = None,
        profile: gr.OAuthProfile | None = None,
    ) -> str:
        """Serve a finished run in /compare, /evaluate and /rate beside the served ones
        (replace=True: alone); returns its adapter label."""
        caller = caller_of(state.access, request, profile)
        return state.serving.serve_run(caller, run_id, replace=bool(replace))

    @shown_errors
    def train_on_ratings(
        adapter: str = "",
        overrides: str = "",
        request: gr.Request = None,
        profile: gr.OAuthProfile | None = None,
    ) -> str:
        """DPO from a served adapter (default: the first) on the pairs the Rate tab has
        collected for it; overrides: a JSON object of the Space's allowed keys. Its run id
        (the Space's owner only; /train_status, /train_stop, /train_resume follow it)."""
        from .training.recipe import parse_overrides

        caller = caller_of(state.access, request, profile)
        state.access.require_owner(caller, "train")
        return state.training.start_on_ratings(caller, state.adapter(adapter or None),
                                               state.rating.read(), parse_overrides(overrides))  # fmt: skip

    gr.api(train_on_ratings, api_name="train_on_ratings", queue=False)
    gr.api(train_status, api_name="train_status", queue=False)
    gr.api(train_stop, api_name="train_stop", queue=False)
    gr.api(train_resume, api_name="train_resume", queue=False)
    gr.api(train_serve, api_name="train_serve", queue=False)  # loads beside, swaps under the lock


def add_api(state: SpaceState, ui: Ui) -> None:
    """The named endpoints, after the page's own (private) events."""
    add_compare(state, ui)
    add_rate(state, ui)
    add_evaluate(state, ui)
    add_train(state, ui)
    add_train_jobs(state, ui)
