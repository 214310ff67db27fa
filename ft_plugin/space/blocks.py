"""The page: a header, the adapter choice, the tabs (:mod:`ft_plugin.space.tabs`) and the
named API (:mod:`ft_plugin.space.api`), over one loaded :class:`SpaceState`."""

from pathlib import Path

import gradio as gr

from .access import Access
from .api import add_api
from .settings import Limits
from .state import SpaceState
from .tabs import TABS
from .ui import Ui

QUEUE_BACKSTOP = 512  # events waiting in Gradio's queue, all kinds together


def _header(state: SpaceState) -> None:
    if state.access.mode == "huggingface":  # Gradio attaches the sign-in routes for it
        gr.LoginButton(elem_id="sign-in")
    if not state.adapters:
        gr.Markdown(
            "# ft-plugin\nFine-tune a language model on your own domain data in the **Train** "
            "tab; then compare it with its base model, evaluate and rate it."
        )
        return
    first = state.adapter()
    gr.Markdown(
        f"# {first.label}\n**{first.recipe.adapter}** fine-tuning of `{first.base_shown}`"
        " with [ft-plugin](https://pypi.org/project/ft-plugin/): the base model and the "
        "tuned one answer side by side."
    )
    if state.disclaimer():
        gr.Markdown(f"> ⚠️ {state.disclaimer()}")


def build_blocks(state: SpaceState) -> gr.Blocks:
    """The Gradio layout over a loaded :class:`SpaceState` (queue configured)."""
    limits = state.limits
    labels = state.adapter_labels
    # Model work is admitted by the service's ModelGate (max_queue running or waiting, the
    # rest refused at once), so Gradio hands it over without a limit of its own.
    model_job = {"concurrency_id": "model", "concurrency_limit": None}
    with gr.Blocks(title=f"ft-plugin · {labels[0] if labels else 'train'}") as demo:
        _header(state)
        adapter = gr.Dropdown(
            labels,
            value=labels[0] if labels else None,
            label="Adapter",
            visible=len(labels) > 1,
            elem_id="adapter",
        )
        pair = gr.State(None)  # the blind pair and its key: server-side only
        ui = Ui(demo=demo, adapter=adapter, pair=pair, model_job=model_job, tab_objects={})
        with gr.Tabs(selected="compare" if labels else "train"):
            for tab_id, title, module in TABS:
                with gr.Tab(title, id=tab_id) as tab:
                    setattr(ui, tab_id, module.layout(state, ui))
                ui.tab_objects[tab_id] = tab
        for _, _, module in TABS:
            module.connect(state, ui)
        add_api(state, ui)
    # Gradio's queue holds every event of every page and API client: a backstop far above
    # the model's own cap, so that visitors' bursts never refuse the owner's status.
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=QUEUE_BACKSTOP)
    demo.ft_plugin_state = state  # for tests and launchers
    return demo


def build_app(
    target: str | list[str] | None,
    *,
    data_dir: Path,
    limits: Limits | None = None,
    ratings_dataset: str | None = None,
    access: Access | None = None,
    base_models: list[str] | None = None,
) -> gr.Blocks:
    """Load the run(s) once and build the Space. ``target``: run dirs or Hub adapter ids;
    none: the Space opens on Train (for its owner, ``access``) and serves what they serve."""
    state = SpaceState.load(
        target or [], data_dir=Path(data_dir), limits=limits, ratings_dataset=ratings_dataset,
        access=access, base_models=base_models or [],
    )  # fmt: skip
    return build_blocks(state)


def main(folder: Path) -> None:
    """Serve the Space configured by ``folder/config.yaml`` and the environment (as a
    Hugging Face Space runs ``app.py``); a configuration error exits with one line."""
    import logging
    import os

    from ft_plugin.errors import UserError
    from ft_plugin.utils.noise import silence_third_party_noise

    from .access import access_for
    from .settings import read_space_config
    from .ui import launch_kwargs

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    silence_third_party_noise()  # as `ft-plugin space` does
    try:
        config = read_space_config(folder)
        host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
        access = access_for(host=host, share=False, environ=os.environ, admins=config.admins,
                            training=config.train)  # fmt: skip
        logging.getLogger("ft_plugin.space").info("who may train: %s", access.describe())
        demo = build_app(
            config.targets,
            data_dir=config.data_dir,
            limits=config.limits,
            ratings_dataset=config.ratings_dataset,
            access=access,
            base_models=config.base_models,
        )
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    demo.launch(**launch_kwargs(demo.ft_plugin_state.limits, access))
    demo.ft_plugin_state.close()  # the server stopped: stop its training, with a checkpoint
