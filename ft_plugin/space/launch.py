"""Launch the Space (``ft-plugin space TARGET…``): load the run(s) and serve the app here,
on a run directory or a Hub adapter id; and load the thin entry point ``app.py`` as a
Hugging Face Space runs it.

Example (usage, not run as a doctest: it loads a model and serves it)::

    demo = launch_space("runs/medical-lora", port=7860, block=False)
    demo.close()
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ft_plugin.hub.space_folder import app_path

from .access import Access, access_for
from .blocks import build_app
from .settings import Limits
from .ui import launch_kwargs

APP_MODULE = "ft_plugin_space_app"


def load_app_module() -> ModuleType:
    """Import the entry point ``app.py`` once (as module ``ft_plugin_space_app``), as a
    Space runs it; it re-exports the app's main names from ``ft_plugin.space``."""
    if APP_MODULE in sys.modules:
        return sys.modules[APP_MODULE]
    spec = importlib.util.spec_from_file_location(APP_MODULE, app_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[APP_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[APP_MODULE]
        raise
    return module


def launch_space(
    targets: str | Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    data_dir: Path = Path("space_data"),
    ratings_dataset: str | None = None,
    limits: Limits | None = None,
    block: bool = True,
    access: Access | None = None,
    base_models: Sequence[str] = (),
    share: bool = False,
) -> Any:
    """Load the run(s) and serve the Space; returns the ``gr.Blocks`` (after it stops
    when ``block``). Hub repo ids are downloaded with ``snapshot_download``. ``access``
    (:class:`ft_plugin.space.access.Access`) says who owns it; by default the rule of
    ``access_for`` for this host and the environment (on 127.0.0.1: the machine's user)."""
    access = access or access_for(host=host, share=share, environ=os.environ)
    demo = build_app(
        [targets] if isinstance(targets, str) else list(targets),
        data_dir=Path(data_dir),
        limits=limits,
        ratings_dataset=ratings_dataset,
        access=access,
        base_models=list(base_models),
    )
    print(f"who may train: {access.describe()}", file=sys.stderr)
    demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        share=share,
        **launch_kwargs(demo.ft_plugin_state.limits, access),
    )
    if block:  # Ctrl-C ended the server: stop the training it started, with a checkpoint
        demo.ft_plugin_state.close()
    return demo
