"""The ft-plugin Gradio Space, as a Hugging Face Space runs it (``app_file: app.py``).

Runs as is on a Space (its requirements.txt installs ``ft-plugin``) and locally with
``python space/app.py`` or ``ft-plugin space TARGET``. As a script it reads the adapter
id(s) from ``$FT_PLUGIN_ADAPTER`` (comma list), else from ``config.yaml`` next to this
file (``adapter:`` or ``adapters:``, ``data_dir:``, ``ratings_dataset:``).

The app itself is the package ``ft_plugin.space`` (tabs, named API, service, ratings).
"""

from pathlib import Path

from ft_plugin.space import (  # noqa: F401  (the app's names, for `load_app_module()` users)
    Answer,
    Limits,
    SpaceState,
    build_app,
    build_blocks,
    launch_kwargs,
    main,
    read_space_config,
)

APP_DIR = Path(__file__).resolve().parent

if __name__ == "__main__":
    main(APP_DIR)
