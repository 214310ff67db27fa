"""What of a run may leave this machine: local paths as file names, URLs as host and file name.

A run directory remembers where its data and models lived (``recipe.yaml``,
``eval/report.json``): paths that name people's folders and their patients' files, and
``data_files`` URLs whose query string can carry a token. A push and the model card show
them reduced: a local path to its file name (``/home/ana/patients/2024.jsonl`` ->
``2024.jsonl``), a URL to its scheme, host and file name (``https://host/a/b.jsonl?token=x``
-> ``https://host/.../b.jsonl``). Hub ids (``OWNER/NAME``), ``hf://`` references,
``builtin:`` and ``embedded:`` names are public already and stay as they are. The reduced
recipe still validates: a path is a string to the schema.

Example:
    >>> public_path("/home/ana/patients/2024.jsonl"), public_path("Qwen/Qwen2.5-0.5B")
    ('2024.jsonl', 'Qwen/Qwen2.5-0.5B')
    >>> public_path("https://user:pw@data.example.org:8443/x/y/train.jsonl?token=SECRET#top")
    'https://data.example.org/.../train.jsonl'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["public_path", "public_recipe", "public_recipe_yaml", "public_report", "public_value",
           "scrubbed_values"]  # fmt: skip

# Names that are public by construction (a Hub file, sample data, the embedded model).
_PUBLIC_PREFIXES = ("hf://", "builtin:", "embedded:")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_WINDOWS_ABSOLUTE = re.compile(r"([A-Za-z]:[\\/]|\\\\)")
# A Hub id never ends like a data or template file; a relative path that does is local.
_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ".arrow", ".yaml",
                  ".yml", ".gz", ".zip", ".xlsx", ".jinja", ".safetensors")  # fmt: skip
# Recipe keys (at any level: top, stages, adapters) that hold a path or a Hub id.
_PATH_KEYS = ("base_model", "tokenizer_config", "lora_model_dir", "output_dir")
_DATASET_LISTS = ("datasets", "test_datasets")
_RECIPE_GROUPS = ("stages", "adapters", "replay", "ewc")  # nested parts of a recipe
_HELD_OUT = " (held-out split)"  # how evaluate/dataset.py names a run's own held-out rows
_MIN_SECRET_CHARS = 6  # a shorter query string would match by chance in any file


def _is_hub_id(value: str) -> bool:
    return (
        _HUB_ID.fullmatch(value) is not None
        and not value.lower().endswith(_FILE_SUFFIXES)
        and not Path(value).exists()
    )


def _file_name(value: str) -> str:
    parts = [p for p in re.split(r"[\\/]+", value) if p]
    return parts[-1] if parts else ""


def _public_url(value: str) -> str:
    url = urlsplit(value)
    name = _file_name(url.path)
    where = f"{url.scheme}://{url.hostname or ''}"  # no user:password@, no port
    if not name:
        return where
    return f"{where}/{name}" if url.path.strip("/") == name else f"{where}/.../{name}"


def public_path(value: str) -> str:
    """``value`` as it may be published: a Hub id or ``hf://`` unchanged, a URL as scheme,
    host and file name, any other path as its file name.

    Example:
        >>> public_path("~/data/train.jsonl"), public_path("C:\\\\Users\\\\ana\\\\notes.csv")
        ('train.jsonl', 'notes.csv')
        >>> public_path("hf://datasets/me/med/train.jsonl"), public_path("builtin:medical")
        ('hf://datasets/me/med/train.jsonl', 'builtin:medical')
    """
    if not value or value.startswith(_PUBLIC_PREFIXES):
        return value
    if _URL.match(value):
        return _public_url(value)
    if _is_hub_id(value):
        return value
    return _file_name(value)


def _looks_local(value: str) -> bool:
    """A string that is an absolute path or a URL wherever it appears (any key)."""
    if value.startswith(_PUBLIC_PREFIXES):
        return False
    return (
        value.startswith(("/", "~"))
        or _WINDOWS_ABSOLUTE.match(value) is not None
        or _URL.match(value) is not None
    )


def public_value(value: Any) -> Any:
    """Every absolute path or URL inside ``value`` (dicts, lists, strings) made public;
    relative paths and every other value unchanged.

    Example:
        >>> public_value({"best_model_checkpoint": "/srv/runs/a/checkpoint-2", "step": 2})
        {'best_model_checkpoint': 'checkpoint-2', 'step': 2}
    """
    if isinstance(value, dict):
        return {k: public_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public_value(v) for v in value]
    if isinstance(value, str) and _looks_local(value):
        return public_path(value)
    return value


def _public_data_file(value: Any, in_hub_repo: bool) -> Any:
    """A path inside a Hub dataset repo stays (it names nothing local); others reduce."""
    if not isinstance(value, str):
        return public_value(value)
    inside = in_hub_repo and not _looks_local(value) and ".." not in value.split("/")
    return value if inside else public_path(value)


def _public_dataset(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return public_value(entry)
    out = public_value(entry)
    path = entry.get("path")
    if isinstance(path, str):
        out["path"] = public_path(path)
    kind = entry.get("type")
    if isinstance(kind, str) and (kind.lower().endswith((".yaml", ".yml")) or "/" in kind):
        out["type"] = public_path(kind)  # a template file, not a type name
    files = entry.get("data_files")
    if files is not None:
        hub = isinstance(path, str) and (_is_hub_id(path) or path.startswith("hf://"))
        if isinstance(files, list):
            out["data_files"] = [_public_data_file(f, hub) for f in files]
        else:
            out["data_files"] = _public_data_file(files, hub)
    return out


def public_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """A resolved recipe (as a dict) with every path made public, keys in their order.

    The keys that hold paths (``base_model``, ``tokenizer_config``, ``lora_model_dir``,
    ``output_dir``, ``ewc.previous``, each dataset's ``path``, ``data_files`` and template
    file ``type``, in ``datasets``, ``test_datasets``, ``replay`` and every stage or task
    adapter) are reduced even when relative; any other string is reduced when it is an
    absolute path or a URL.

    Example:
        >>> public_recipe({"base_model": "/models/llama", "datasets": [
        ...     {"path": "/srv/ana/rows.jsonl", "type": "/srv/ana/tpl.yaml"}]})
        {'base_model': 'llama', 'datasets': [{'path': 'rows.jsonl', 'type': 'tpl.yaml'}]}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DATASET_LISTS and isinstance(value, list):
            out[key] = [_public_dataset(entry) for entry in value]
        elif key in _RECIPE_GROUPS and isinstance(value, list):
            out[key] = [public_recipe(v) if isinstance(v, dict) else v for v in value]
        elif key in _RECIPE_GROUPS and isinstance(value, dict):
            out[key] = public_recipe(value)
        elif (key in _PATH_KEYS or key == "previous") and isinstance(value, str):
            out[key] = public_path(value)
        else:
            out[key] = public_value(value)
    return out


def public_recipe_yaml(text: str) -> str:
    """``recipe.yaml`` text as it may be published (:func:`public_recipe`).

    Example:
        >>> print(public_recipe_yaml("output_dir: /home/ana/runs/x\\nlora_r: 8\\n"), end="")
        output_dir: x
        lora_r: 8
    """
    import yaml

    data = yaml.safe_load(text) or {}
    return yaml.safe_dump(public_recipe(data), sort_keys=False, allow_unicode=True)


def _held_out_name(source: str, recipe: Any | None) -> str:
    files = [public_path(d.path) for d in recipe.datasets] if recipe is not None else []
    return f"held-out split of {', '.join(files) or public_path(source[: -len(_HELD_OUT)])}"


def public_report(
    report: dict[str, Any] | None, recipe: Any | None = None
) -> dict[str, Any] | None:
    """An evaluation report (``eval/report.json``) with its data source, target and any
    other path made public; a run's held-out rows read ``held-out split of FILE``.

    Example:
        >>> public_report({"data": {"source": "/srv/runs/a (held-out split)"},
        ...                "settings": {"target": "/srv/runs/a", "data": None}})
        {'data': {'source': 'held-out split of a'}, 'settings': {'target': 'a', 'data': None}}
    """
    if report is None:
        return None
    out = public_value(report)
    source = (report.get("data") or {}).get("source")
    if isinstance(source, str):
        held_out = source.endswith(_HELD_OUT)
        out["data"]["source"] = _held_out_name(source, recipe) if held_out else public_path(source)
    settings = out.get("settings")
    if isinstance(settings, dict):
        for key in ("target", "data", "template"):
            if isinstance(settings.get(key), str):
                settings[key] = public_path(settings[key])
    return out


def scrubbed_values(original: Any, public: Any) -> set[str]:
    """The absolute paths and URLs of ``original`` that :func:`public_recipe` (or
    :func:`public_report`) changed in ``public``, with each URL's query string and
    password: what must not appear in anything published.

    Example:
        >>> sorted(scrubbed_values({"p": "https://h/x.csv?k=SECRET", "q": "data/y.csv"},
        ...                        {"p": "https://h/x.csv", "q": "y.csv"}))
        ['https://h/x.csv?k=SECRET', 'k=SECRET']
    """
    found: set[str] = set()
    if isinstance(original, dict) and isinstance(public, dict):
        for key, value in original.items():
            found |= scrubbed_values(value, public.get(key))
    elif isinstance(original, list) and isinstance(public, list):
        for value, shown in zip(original, public, strict=False):
            found |= scrubbed_values(value, shown)
    elif isinstance(original, str) and original != public and _looks_local(original):
        found.add(original)
        if _URL.match(original):
            url = urlsplit(original)
            found |= {p for p in (url.query, url.password) if p and len(p) >= _MIN_SECRET_CHARS}
    return found
