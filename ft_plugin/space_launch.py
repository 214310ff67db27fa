"""`ft-plugin space`: run the Gradio Space locally, or publish it as a Hugging Face Space.

The app is the package ``ft_plugin.space``; ``space/app.py`` is its thin entry point,
deployable unchanged as a Space's ``app_file`` (the Space installs ``ft-plugin`` from its
requirements). This module launches the app on a run directory or a Hub adapter id, and
builds and pushes the Space folder: ``app.py``, ``requirements.txt`` pinned to the
versions installed here, ``config.yaml`` naming the adapter, and ``README.md`` whose YAML
header is built with ``huggingface_hub.SpaceCardData``.

Nothing here imports gradio or torch at import time, so the CLI stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from ft_plugin import __version__
from ft_plugin.errors import UserError

APP_MODULE = "ft_plugin_space_app"
# Pinned in the Space's requirements.txt at the versions installed here; ft-plugin
# itself is pinned as ft-plugin==<version>. The eval packages back the Evaluate tab.
PINNED = ("gradio", "transformers", "peft", "torch", "huggingface_hub")
EVAL_PINNED = ("sacrebleu", "rouge-score", "scikit-learn", "scipy", "matplotlib")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def app_path() -> Path:
    """Where the entry point ``app.py`` is: shipped inside the package
    (``ft_plugin/space/app.py``, a link to ``space/app.py`` in a checkout) or the repo's
    top-level ``space/`` folder."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "space" / "app.py", here.parent / "space" / "app.py"):
        if candidate.is_file():
            return candidate
    raise UserError(
        "space/app.py not found: the Space ships with the ft-plugin sources "
        "(install from a checkout, or include space/ in the package)"
    )


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
    limits: Any | None = None,
    block: bool = True,
    access: Any | None = None,
    base_models: Sequence[str] = (),
    share: bool = False,
) -> Any:
    """Load the run(s) and serve the Space; returns the ``gr.Blocks`` (after it stops
    when ``block``). Hub repo ids are downloaded with ``snapshot_download``. ``access``
    (:class:`ft_plugin.space.access.Access`) says who owns it; by default the rule of
    ``access_for`` for this host and the environment (on 127.0.0.1: the machine's user)."""
    from ft_plugin.space import build_app, launch_kwargs
    from ft_plugin.space.access import access_for

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


# --------------------------------------------------------------------------- the Space repo


def _version(name: str) -> str | None:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
    return version.split("+", 1)[0]  # torch's "2.13.0+cpu": the local label is not on PyPI


def requirements_text() -> str:
    """``requirements.txt`` of the Space, pinned to the versions installed here (Gradio
    with its sign-in extra: the Train tab needs Hugging Face sign-in)."""
    lines = [f"ft-plugin=={__version__}"]
    for name in (*PINNED, *EVAL_PINNED):
        version = _version(name)
        if version is None:
            if name in PINNED:
                raise UserError(f"{name} is not installed; install ft-plugin[space] first")
            continue
        lines.append(f"{'gradio[oauth]' if name == 'gradio' else name}=={version}")
    return "\n".join(lines) + "\n"


def _check_repo_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _REPO_ID.match(value):
        raise UserError(f"{what}: {value!r} is not a Hub repo id (OWNER/NAME)")
    return value


def space_card(adapter_id: str, *, license: str = "apache-2.0", train: bool = False) -> Any:
    """The Space's README.md: YAML header from ``SpaceCardData`` (``hf_oauth: true`` when
    its owner trains in it: only they may), then a short body."""
    from huggingface_hub import SpaceCard, SpaceCardData

    name = adapter_id.split("/")[-1]
    short = f"Base vs fine-tuned: {name}"
    if len(short) > 60:
        short = short[:59] + "…"
    data = SpaceCardData(
        title=f"{name} vs base"[:60],
        sdk="gradio",
        sdk_version=_version("gradio"),
        app_file="app.py",
        license=license,
        models=[adapter_id],
        tags=["ft-plugin", "peft", "fine-tuning"],
        emoji="🔬",
        colorFrom="indigo",
        colorTo="blue",
        short_description=short,
        pinned=False,
        **({"hf_oauth": True} if train else {}),
    )
    body = f"""# {name}: base model vs fine-tuned

Built with [ft-plugin](https://pypi.org/project/ft-plugin/) for the adapter
[{adapter_id}](https://huggingface.co/{adapter_id}).

- **Compare**: the base model and the fine-tuned one answer the same prompt, side by side,
  with latency and tokens/s.
- **Evaluate**: upload JSONL/CSV rows (or use the template's sample) for base-vs-tuned metrics
  and a downloadable report.
- **Rate**: blind A/B ratings (1-5 for relevance, accuracy, readability, and a preference),
  stored in `ratings.jsonl`; set `ratings_dataset:` in `config.yaml` (and an `HF_TOKEN`
  secret) to commit them to a Hub dataset.
- **Model card**: the adapter's card and training metrics.

API (`gradio_client`):

```python
from gradio_client import Client

client = Client("OWNER/SPACE")
base, tuned = client.predict("your question", 128, api_name="/compare")
```

`config.yaml` names the adapter (`adapter:`, or `adapters:` for several adapters of one
base model); the environment variable `FT_PLUGIN_ADAPTER` overrides it.

{_TRAIN_ON if train else _TRAIN_OFF}
"""
    return SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


_TRAIN_ON = """**Train** belongs to the Space's owner: sign in with Hugging Face (this Space's
author, or a user under `admins:` in `config.yaml`) to train, serve and publish runs;
visitors compare, evaluate and rate."""
_TRAIN_OFF = """Training is off in this Space (`train: false` in `config.yaml`); visitors compare,
evaluate and rate."""


def build_space_folder(adapter_id: str, folder: Path, *, train: bool = False) -> Path:
    """Write the Space's files into ``folder`` (no network): app.py, requirements.txt,
    config.yaml and README.md; ``train`` turns on its Train tab behind Hugging Face
    sign-in (``hf_oauth: true``), for its owner only."""
    import yaml

    _check_repo_id(adapter_id, "--adapter")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_bytes(app_path().read_bytes())
    (folder / "requirements.txt").write_text(requirements_text(), encoding="utf-8")
    config = {"adapter": adapter_id, "data_dir": "space_data", "train": train}
    (folder / "config.yaml").write_text(
        "# ft-plugin Space settings (FT_PLUGIN_ADAPTER overrides adapter).\n"
        + yaml.safe_dump(config, sort_keys=False)
        + "# admins: [USER]                   # owners besides the Space's author (sign-in)\n"
        + "# base_models: [OWNER/MODEL]       # what Train may fine-tune (default: the served base)\n"
        + "# ratings_dataset: OWNER/DATASET   # commit ratings.jsonl there (needs HF_TOKEN)\n",
        encoding="utf-8",
    )
    space_card(adapter_id, train=train).save(folder / "README.md")
    return folder


def push_space(repo_id: str, adapter_id: str, *, private: bool, train: bool = False) -> str:
    """Create (or update) the Space ``repo_id`` serving ``adapter_id``, in one commit;
    returns the Space's URL. ``private`` has no default: its owner chooses who sees it."""
    from huggingface_hub import HfApi

    from ft_plugin.hub_calls import with_retries

    _check_repo_id(repo_id, "--repo-id")
    _check_repo_id(adapter_id, "--adapter")
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="ft-plugin-space-") as tmp:
        folder = build_space_folder(adapter_id, Path(tmp), train=train)
        url = with_retries(
            lambda: api.create_repo(
                repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True
            ),
            what=f"create Space {repo_id}",
        )
        with_retries(
            lambda: api.upload_folder(
                repo_id=repo_id,
                repo_type="space",
                folder_path=str(folder),
                commit_message=f"ft-plugin Space for {adapter_id}",
            ),
            what=f"push to Space {repo_id}",
        )
    return str(url)


# --------------------------------------------------------------------------- CLI


def add_space_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ft-plugin space TARGET…`` and ``ft-plugin space push``."""
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="run directory or Hub adapter id (several: adapters of one base model), "
        "or `push` to publish the Space; none: open on Train",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--data-dir",
        default="space_data",
        help="where ratings.jsonl and the Train tab's runs (train/) are written "
        "(default %(default)s)",
    )
    parser.add_argument("--ratings-dataset", help="Hub dataset id to commit ratings.jsonl to")
    parser.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="Gradio's login (repeatable; also FT_PLUGIN_SPACE_AUTH): needed to train in a "
        "Space served beyond this machine (--host 0.0.0.0, --share)",
    )
    parser.add_argument("--share", action="store_true", help="a public gradio.live link")
    parser.add_argument(
        "--config",
        help="a Space config.yaml: limits, admins, base_models (what Train may fine-tune), train",
    )
    parser.add_argument(
        "--local-sign-in",
        action="store_true",
        help="develop Hugging Face sign-in on 127.0.0.1: Gradio's stand-in signs anyone in "
        "as this machine's Hugging Face user (never for a deployed Space)",
    )
    parser.add_argument("--repo-id", help="push: the Space, OWNER/NAME")
    parser.add_argument("--adapter", help="push: the adapter the Space serves, OWNER/NAME")
    seen = parser.add_mutually_exclusive_group()
    seen.add_argument("--private", action="store_true", help="push: only you (and your org) see it")
    seen.add_argument("--public", action="store_true", help="push: anyone sees it")
    parser.add_argument(
        "--train",
        action="store_true",
        help="push: turn the Train tab on, for the Space's owner (Hugging Face sign-in)",
    )


def space_command(args: argparse.Namespace) -> int:
    """Handler of ``ft-plugin space``: launch, or push with ``space push``."""
    if args.targets[:1] == ["push"]:
        return _push_command(args)
    if args.repo_id or args.adapter or args.private or args.public or args.train:
        raise UserError("--repo-id, --adapter, --private, --public and --train belong to "
                        "`ft-plugin space push`")  # fmt: skip
    from ft_plugin.space.access import access_for
    from ft_plugin.space.settings import SpaceConfig, read_space_config

    config = SpaceConfig([], Path(args.data_dir))
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise UserError(f"--config {path}: no such file")
        config = read_space_config(path.parent, dict(os.environ), file=path.name)
    access = access_for(host=args.host, share=args.share, environ=os.environ, auth=args.auth,
                        admins=config.admins, training=config.train,
                        mock_sign_in=args.local_sign_in)  # fmt: skip
    launch_space(
        args.targets,
        host=args.host,
        limits=config.limits if args.config else limits_from_environment(),
        port=args.port,
        data_dir=Path(args.data_dir),
        ratings_dataset=args.ratings_dataset or config.ratings_dataset,
        access=access,
        base_models=config.base_models,
        share=args.share,
    )
    return 0


def limits_from_environment() -> Any:
    from ft_plugin.space.settings import limits_from

    return limits_from({}, dict(os.environ), "the environment")


def _push_command(args: argparse.Namespace) -> int:
    if len(args.targets) > 1:
        raise UserError(f"space push: unexpected argument {args.targets[1]!r}")
    missing = [flag for flag, value in (("--repo-id", args.repo_id),
               ("--adapter", args.adapter)) if not value]  # fmt: skip
    if missing:
        raise UserError(f"space push: {' and '.join(missing)} required")
    if not (args.private or args.public):
        raise UserError(
            "space push: choose who sees the Space: --private (you and your organisation) "
            "or --public (anyone)"
        )
    url = push_space(args.repo_id, args.adapter, private=args.private, train=args.train)
    train = "Train on, for its owner (Hugging Face sign-in)" if args.train else "Train off"
    print(
        f"{args.repo_id}: Space pushed -> {url} ({'private' if args.private else 'public'}; {train})"
    )
    return 0
