"""Train: data → model and method → recipe → train and watch, without code; the
Space's owner's tab.

The work is :mod:`ft_plugin.space.training` (the same data stage, builtin recipes and
``ft-plugin train`` command line as the terminal); this module only lays out the page
and wires its events, each of which passes the request's caller to the service, which
refuses everyone but the owner (:mod:`ft_plugin.space.access`). A visitor sees how to
sign in instead of the steps. For the owner a timer redraws the job's status every two
seconds from its run directory, so a reloaded page reattaches to a running job.
"""

import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from ft_plugin import registry

from ..access import Caller, Forbidden
from ..settings import DATA_SUFFIXES
from ..state import SpaceState
from ..training import data as data_step
from ..training import views
from ..training.recipe import DEFAULT_BASE, TrainRequest, key_settings, space_methods
from ..ui import Ui, caller_of, shown_errors
from . import train_ratings

Profile = gr.OAuthProfile | None  # the Hugging Face sign-in, where the Space has one

TEMPLATE = "medical"  # the page opens on it
LOSS_SERIES = ("loss", "eval_loss")
NUMBERS = {  # recipe key -> (label, precision: 0 for integers)
    "max_steps": ("Max steps (0: run the epochs)", 0), "num_epochs": ("Epochs", 2),
    "learning_rate": ("Learning rate", 8), "micro_batch_size": ("Micro-batch size", 0),
    "gradient_accumulation_steps": ("Gradient accumulation", 0),
    "sequence_len": ("Sequence length (tokens)", 0), "val_set_size": ("Held-out share or rows", 3),
    "lora_r": ("LoRA rank r", 0), "lora_alpha": ("LoRA alpha", 0),
}  # fmt: skip


def all_fields() -> list[str]:
    """Every template's fields, in first-seen order (one column choice each)."""
    names: list[str] = []
    for template in registry.templates():
        names += [f for f in data_step.template_fields(template) if f not in names]
    return names


def _data_step() -> SimpleNamespace:
    gr.Markdown("### 1 · Data")
    with gr.Row():
        file = gr.File(label="Data file (CSV, TSV, JSON, JSONL, Parquet; any encoding)",
                       file_types=list(DATA_SUFFIXES), elem_id="train-file")  # fmt: skip
        with gr.Column():
            template = gr.Dropdown(list(registry.templates()), value=TEMPLATE,
                                   label="Domain template", elem_id="train-template")  # fmt: skip
            sample = gr.Checkbox(False, label="Use the template's sample data instead")
            read = gr.Button("Read the data", elem_id="train-read")
    info = gr.Markdown(elem_id="train-data-info")
    with gr.Row():
        mapping = {
            name: gr.Dropdown(
                [],
                label=f"column for {name}",
                visible=False,
                allow_custom_value=False,
                elem_id=f"train-map-{name}",
            )  # fmt: skip
            for name in all_fields()
        }
    with gr.Row():
        preview_button = gr.Button("Preview rows as trained", elem_id="train-preview-button")
        clean_button = gr.Button("Clean and show the report", elem_id="train-clean-button")
    preview = gr.Textbox(label="Rows as trained: the part between « and » carries the loss",
                         lines=10, interactive=False, elem_id="train-preview")  # fmt: skip
    with gr.Row():
        report = gr.Markdown(elem_id="train-clean-report")
        histogram = gr.Image(label="Token lengths", type="filepath", interactive=False)
    return SimpleNamespace(file=file, template=template, sample=sample, read=read, info=info,
                           mapping=mapping, preview_button=preview_button, clean_button=clean_button,
                           preview=preview, report=report, histogram=histogram)  # fmt: skip


def _model_step() -> SimpleNamespace:
    gr.Markdown("### 2 · Model and method")
    defaults = key_settings(TEMPLATE, "lora")
    with gr.Row():
        base = gr.Dropdown([DEFAULT_BASE], value=DEFAULT_BASE, elem_id="train-base",
                           label="Base model (the Space's owner lists them: base_models)")  # fmt: skip
        method = gr.Dropdown(space_methods(), value="lora", label="Method", elem_id="train-method")
    with gr.Row():
        numbers = {key: gr.Number(defaults[key] or 0, label=label, precision=digits,
                                  elem_id=f"train-{key}")  # fmt: skip
                   for key, (label, digits) in NUMBERS.items()}  # fmt: skip
    check = gr.Button("Show the recipe and the estimate", elem_id="train-check")
    estimate = gr.Markdown(elem_id="train-estimate")
    gr.Markdown(
        "### 3 · Recipe (the same run from the command line: `ft-plugin train recipe.yaml`)"
    )
    recipe = gr.Code(language="yaml", label="Recipe", interactive=False, elem_id="train-recipe")
    download = gr.DownloadButton("Download the recipe", visible=False, elem_id="train-download")
    return SimpleNamespace(base=base, method=method, numbers=numbers, check=check,
                           estimate=estimate, recipe=recipe, download=download)  # fmt: skip


def _run_step() -> SimpleNamespace:
    gr.Markdown("### 4 · Train")
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="train-start")
        stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        resume = gr.Button("Resume", elem_id="train-resume")
        run_id = gr.Textbox(label="Run id", interactive=False, elem_id="train-run-id")
    status = gr.Markdown(views.status_markdown(None), elem_id="train-status")
    with gr.Row():
        loss = gr.LinePlot(
            x="step", y="value", color="series", title="Loss", elem_id="train-loss-plot"
        )
        rate = gr.LinePlot(x="step", y="value", color="series", title="Learning rate",
                           elem_id="train-lr-plot")  # fmt: skip
    log = gr.Textbox(label="Log (last lines)", lines=8, interactive=False, elem_id="train-log")
    history = gr.Dataframe(headers=["run id", "recipe", "state", "steps", "train loss", "eval loss", "started"],
                           label="Runs", interactive=False, elem_id="train-history")  # fmt: skip
    with gr.Row():
        serve = gr.Button("Serve this run in Compare, Evaluate and Rate", elem_id="train-serve")
        replace = gr.Checkbox(False, label="Replace the served runs (serve it alone)")
    served_note = gr.Markdown(elem_id="train-served")
    ratings = gr.Button("Train on ratings: DPO from the served adapter on the Rate tab's pairs",
                        elem_id="train-on-ratings")  # fmt: skip
    with gr.Accordion("Download the run as GGUF (llama.cpp, Ollama)", open=False):
        with gr.Row():
            quant = gr.Dropdown(["q4_k_m", "q8_0", "f16"], value="q4_k_m", label="Weights",
                                elem_id="train-gguf-quant")  # fmt: skip
            export = gr.Button("Export GGUF", elem_id="train-gguf-export")
            gguf = gr.DownloadButton("Download GGUF", visible=False, elem_id="train-gguf")
        exported = gr.Markdown(elem_id="train-gguf-note")
    with gr.Accordion("Publish the run to the Hub", open=False):
        with gr.Row():
            repo = gr.Textbox(label="Repo id (OWNER/NAME); the token comes from the Space's HF_TOKEN secret",
                              elem_id="train-repo")  # fmt: skip
            private = gr.Checkbox(True, label="Private")
            overwrite = gr.Checkbox(False, label="Push into an existing repo")
            publish = gr.Button("Publish", elem_id="train-publish")
        published = gr.Markdown(elem_id="train-published")
    return SimpleNamespace(start=start, stop=stop, resume=resume, run_id=run_id, status=status,
                           loss=loss, rate=rate, log=log, history=history, serve=serve,
                           replace=replace, served_note=served_note, ratings=ratings,
                           repo=repo, private=private, quant=quant, export=export, gguf=gguf,
                           exported=exported, overwrite=overwrite, publish=publish,
                           published=published)  # fmt: skip


def gate_markdown(state: SpaceState, caller: Caller) -> str:
    """Who the caller is to this tab, and how the owner gets in."""
    access = state.access
    if caller.owner and access.training:
        who = (
            f"Signed in as **{caller.name}**, an owner of this Space."
            if access.mode != "local"
            else ""
        )
        return who
    try:
        access.require_owner(caller, "train")
        reason = "training is off"  # not reached: an owner returned above
    except Forbidden as refusal:  # the service's own words: one rule, one message
        reason = str(refusal)
    return f"🔒 {reason[:1].upper()}{reason[1:]}. Visitors can compare, evaluate and rate."


def layout(state: SpaceState, ui: Ui) -> SimpleNamespace:
    owner_view = state.access.mode == "local" and state.access.training
    gate = gr.Markdown(elem_id="train-gate")
    with gr.Column(visible=owner_view) as steps:
        gr.Markdown(
            "Fine-tune a model on your own rows: the data is cleaned as `ft-plugin data prepare` "
            f"cleans it, and the run is `ft-plugin train` on the resolved recipe. One training at a "
            f"time; at most {state.limits.max_train_steps:,} steps and {state.limits.max_train_rows:,} rows."
        )
        draft = gr.State(None)  # the Upload being prepared: server-side
        tab = SimpleNamespace(draft=draft, data=_data_step(), model=_model_step(), run=_run_step())
    tab.gate, tab.steps = gate, steps
    tab.timer = gr.Timer(2.0, active=owner_view)  # visitors' pages never poll
    tab.served = gr.State(tuple(state.adapter_labels))
    return tab


def _request(tab: SimpleNamespace, values: list) -> tuple[data_step.Upload, TrainRequest]:  # noqa: ANN001
    """The page's choices (in ``_choice_inputs`` order) as a checked request."""
    upload, base, method, *rest = values
    columns = dict(zip(tab.data.mapping, rest[: len(tab.data.mapping)], strict=True))
    numbers = dict(zip(NUMBERS, rest[len(tab.data.mapping) :], strict=True))
    if upload is None:
        raise gr.Error("data: read a file (or the template's sample) first", print_exception=False)
    overrides = {
        k: v for k, v in numbers.items() if v not in (None, "") and not (k == "max_steps" and not v)
    }
    fields = data_step.checked_mapping(upload, columns)
    return upload, TrainRequest(data=upload.source, template=upload.template, fields=fields,
                                method=method, base_model=base or DEFAULT_BASE, overrides=overrides,
                                encoding=upload.encoding)  # fmt: skip


def _choice_inputs(tab: SimpleNamespace) -> list:
    return [tab.draft, tab.model.base, tab.model.method, *tab.data.mapping.values(),
            *tab.model.numbers.values()]  # fmt: skip


def connect(state: SpaceState, ui: Ui) -> None:
    tab = ui.train
    _connect_gate(state, ui, tab)
    _connect_data(state, tab)
    _connect_recipe(state, tab)
    _connect_run(state, ui, tab)


def _connect_gate(state: SpaceState, ui: Ui, tab: SimpleNamespace) -> None:
    def ui_gate(request: gr.Request, profile: Profile):  # noqa: ANN202
        caller = caller_of(state.access, request, profile)
        owner = caller.owner and state.access.training
        bases = state.base_models()
        base = gr.update(choices=bases, value=bases[0]) if owner else gr.update()
        return (gate_markdown(state, caller), gr.update(visible=owner),
                gr.Timer(active=owner), base)  # fmt: skip

    outputs = [tab.gate, tab.steps, tab.timer, tab.model.base]
    ui.demo.load(ui_gate, None, outputs, api_visibility="private", queue=False)
    # signing in may happen in another window: look again whenever the tab is opened
    ui.tab_objects["train"].select(ui_gate, None, outputs, api_visibility="private", queue=False)


def _connect_data(state: SpaceState, tab: SimpleNamespace) -> None:
    data = tab.data

    @shown_errors
    def ui_read(request: gr.Request, profile: Profile, file, template, use_sample, method):  # noqa: ANN001, ANN202
        caller = caller_of(state.access, request, profile)
        upload = state.training.upload(caller, None if use_sample else file, template)
        fields = data_step.template_fields(upload.template)
        updates = [gr.update(choices=["", *upload.columns], value=upload.mapping.get(name, ""),
                             visible=name in fields, label=f"column for {name}{' *' * fields.get(name, False)}")
                   for name in data.mapping]  # fmt: skip
        defaults = key_settings(upload.template, method)
        numbers = [gr.update(value=defaults[key] or 0) for key in NUMBERS]
        return upload, views.upload_markdown(upload), *updates, *numbers

    outputs = [tab.draft, data.info, *data.mapping.values(), *tab.model.numbers.values()]
    inputs = [data.file, data.template, data.sample, tab.model.method]
    gr.on([data.read.click, data.file.upload], ui_read, inputs, outputs, api_visibility="private",
          queue=False)  # fmt: skip

    @shown_errors
    def ui_preview(request: gr.Request, profile: Profile, *values):  # noqa: ANN002, ANN202
        upload, request_ = _request(tab, list(values))
        return state.training.preview(caller_of(state.access, request, profile), upload, request_)

    data.preview_button.click(
        ui_preview, _choice_inputs(tab), [data.preview], api_visibility="private", queue=False
    )

    @shown_errors
    def ui_clean(request: gr.Request, profile: Profile, *values):  # noqa: ANN002, ANN202
        upload, request_ = _request(tab, list(values))
        cleaned = state.training.clean(caller_of(state.access, request, profile), upload, request_)
        text = f"{views.cleaning_summary(cleaned.report)}\n\n{cleaned.markdown}"
        return text, str(cleaned.histogram) if cleaned.histogram else None

    outputs = [data.report, data.histogram]
    data.clean_button.click(
        ui_clean, _choice_inputs(tab), outputs, api_visibility="private", queue=False
    )


def _connect_recipe(state: SpaceState, tab: SimpleNamespace) -> None:
    model = tab.model

    @shown_errors
    def ui_recipe(request: gr.Request, profile: Profile, *values):  # noqa: ANN002, ANN202
        caller = caller_of(state.access, request, profile)
        upload, request_ = _request(tab, list(values))
        text = state.training.recipe_yaml(caller, upload, request_)
        path = (
            Path(tempfile.mkdtemp(prefix="recipe-"))
            / f"space-{request_.template}-{request_.method}.yaml"
        )
        path.write_text(text, encoding="utf-8")
        estimate = state.training.estimate(caller, request_)
        return (
            text,
            gr.update(value=str(path), visible=True),
            f"Estimate before training: {estimate}",
        )

    outputs = [model.recipe, model.download, model.estimate]
    model.check.click(
        ui_recipe, _choice_inputs(tab), outputs, api_visibility="private", queue=False
    )

    def ui_method(template, method):  # noqa: ANN001, ANN202
        defaults = key_settings(template, method)
        return [gr.update(value=defaults[key] or 0) for key in NUMBERS]

    model.method.change(ui_method, [tab.data.template, model.method], list(model.numbers.values()),
                        api_visibility="private", queue=False)  # fmt: skip


def _connect_run(state: SpaceState, ui: Ui, tab: SimpleNamespace) -> None:
    run = tab.run

    @shown_errors
    def ui_start(request: gr.Request, profile: Profile, *values):  # noqa: ANN002, ANN202
        caller = caller_of(state.access, request, profile)
        state.access.require_owner(caller, "train")
        _, train_request = _request(tab, list(values))
        return state.training.start(caller, train_request)

    run.start.click(
        ui_start, _choice_inputs(tab), [run.run_id], api_visibility="private", queue=False
    )

    @shown_errors
    def ui_stop(request: gr.Request, profile: Profile, run_id):  # noqa: ANN001, ANN202
        if run_id:
            state.training.stop(caller_of(state.access, request, profile), run_id)

    @shown_errors
    def ui_resume(request: gr.Request, profile: Profile, run_id):  # noqa: ANN001, ANN202
        if not run_id:
            raise gr.Error("no run to resume: start one first", print_exception=False)
        state.training.resume(caller_of(state.access, request, profile), run_id)

    run.stop.click(ui_stop, [run.run_id], None, api_visibility="private", queue=False)
    run.resume.click(ui_resume, [run.run_id], None, api_visibility="private", queue=False)
    _connect_refresh(state, ui, tab)
    _connect_serve(state, tab)
    _connect_publish(state, tab)
    train_ratings.connect(state, ui, tab)


def _connect_refresh(state: SpaceState, ui: Ui, tab: SimpleNamespace) -> None:
    run = tab.run
    outputs = [run.run_id, run.status, run.loss, run.rate, run.log, run.history, tab.served,
               ui.adapter]  # fmt: skip

    def ui_refresh(request: gr.Request, profile: Profile, run_id, served):  # noqa: ANN001, ANN202
        caller = caller_of(state.access, request, profile)
        if not (caller.owner and state.access.training):  # a visitor sees no job
            return [gr.update() for _ in outputs]
        history = state.training.history(caller)
        if not run_id and history:  # a reloaded page: the running job, else the latest
            running = state.training.jobs.running()
            run_id = running or history[0]["run_id"]
        status = state.training.status(caller, run_id) if run_id else None
        labels = tuple(state.adapter_labels)
        adapter = gr.update()
        if labels != tuple(served):
            adapter = gr.update(choices=list(labels), value=labels[-1], visible=len(labels) > 1)
        return (run_id or "", views.status_markdown(status), views.curve_frame(status, LOSS_SERIES),
                views.curve_frame(status, ("learning_rate",)), (status or {}).get("log_tail", ""),
                views.history_rows(history), labels, adapter)  # fmt: skip

    inputs = [run.run_id, tab.served]
    tab.timer.tick(ui_refresh, inputs, outputs, api_visibility="private", show_progress="hidden",
                   queue=False)  # fmt: skip
    ui.demo.load(ui_refresh, inputs, outputs, api_visibility="private", queue=False)


def _connect_serve(state: SpaceState, tab: SimpleNamespace) -> None:
    run = tab.run

    @shown_errors
    def ui_serve(request: gr.Request, profile: Profile, run_id, replace):  # noqa: ANN001, ANN202
        if not run_id:
            raise gr.Error("no run to serve: train one first", print_exception=False)
        label = state.serving.serve_run(caller_of(state.access, request, profile), run_id,
                                        replace=bool(replace))  # fmt: skip
        return f"Serving **{label}**: choose it in the Adapter list above Compare."

    run.serve.click(ui_serve, [run.run_id, run.replace], [run.served_note],
                    api_visibility="private", queue=False)  # fmt: skip


def _connect_publish(state: SpaceState, tab: SimpleNamespace) -> None:
    run = tab.run

    @shown_errors
    def ui_publish(request: gr.Request, profile: Profile, run_id, repo_id, private, overwrite):  # noqa: ANN001, ANN202
        if not run_id:
            raise gr.Error("no run to publish: train one first", print_exception=False)
        result = state.serving.publish(caller_of(state.access, request, profile), run_id,
                                       repo_id, private=bool(private),
                                       overwrite=bool(overwrite))  # fmt: skip
        return f"Published to [{result.repo_id}]({result.url}) (commit `{result.commit[:8]}`)."

    run.publish.click(ui_publish, [run.run_id, run.repo, run.private, run.overwrite],
                      [run.published], api_visibility="private", queue=False)  # fmt: skip

    @shown_errors
    def ui_export(request: gr.Request, profile: Profile, run_id, quant):  # noqa: ANN001, ANN202
        if not run_id:
            raise gr.Error("no run to export: train one first", print_exception=False)
        path, note = state.training.export_gguf(caller_of(state.access, request, profile),
                                                run_id, quant)  # fmt: skip
        return gr.DownloadButton(value=str(path), visible=True), note

    run.export.click(ui_export, [run.run_id, run.quant], [run.gguf, run.exported],
                     api_visibility="private")  # fmt: skip
