"""The Space folder a Hugging Face Space runs, built and pushed (``ft-plugin space push``).

The folder: ``app.py`` (the thin entry point, ``space/app.py``), ``requirements.txt``
pinned to the versions installed here, ``config.yaml`` naming the adapter, and
``README.md`` whose YAML header is built with ``huggingface_hub.SpaceCardData``. The app
itself is the package ``ft_plugin.space``, which the Space installs from its requirements.

Nothing here imports gradio or torch, so the CLI stays fast.

Example (usage, not run as a doctest: it writes files)::

    build_space_folder("me/medical-lora", Path("my-space"), train=True)
    push_space("me/medical-space", "me/medical-lora", private=True)
"""

from __future__ import annotations

import re
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from ft_plugin import __version__
from ft_plugin.errors import UserError

# Pinned in the Space's requirements.txt at the versions installed here; ft-plugin
# itself is pinned as ft-plugin==<version>. The eval packages back the Evaluate tab.
PINNED = ("gradio", "transformers", "peft", "torch", "huggingface_hub")
EVAL_PINNED = ("sacrebleu", "rouge-score", "scikit-learn", "scipy", "matplotlib")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def app_path() -> Path:
    """Where the entry point ``app.py`` is: shipped inside the package
    (``ft_plugin/space/app.py``, a link to ``space/app.py`` in a checkout) or the repo's
    top-level ``space/`` folder."""
    package = Path(__file__).resolve().parent.parent  # ft_plugin/
    for candidate in (package / "space" / "app.py", package.parent / "space" / "app.py"):
        if candidate.is_file():
            return candidate
    raise UserError(
        "space/app.py not found: the Space ships with the ft-plugin sources "
        "(install from a checkout, or include space/ in the package)"
    )


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

    from ft_plugin.hub.calls import with_retries

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
