"""What a public Space allows (:class:`Limits`) and where it reads its settings from.

A Space run as a script reads the adapter id(s) from ``$FT_PLUGIN_ADAPTER`` (comma list),
else from ``config.yaml`` next to its ``app.py`` (``adapter:`` or ``adapters:``,
``data_dir:``, ``ratings_dataset:``, ``limits:``, ``admins:``, ``base_models:``,
``train:``); with no adapter it opens on Train. Each limit can also be set as
``FT_PLUGIN_<NAME>`` (``FT_PLUGIN_MAX_TRAIN_STEPS=500``), and so can the lists
(``FT_PLUGIN_BASE_MODELS=a,b``) and ``FT_PLUGIN_TRAIN=false``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
CONFIG_FILE = "config.yaml"
CONFIG_KEYS = ("adapter", "adapters", "data_dir", "ratings_dataset", "limits", "admins",
               "base_models", "train")  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """What one request may ask of a public Space (all overridable).

    Example:
        >>> Limits(max_new_tokens=64).max_new_tokens, Limits().concurrency
        (64, 1)
    """

    max_prompt_chars: int = 2000
    max_new_tokens: int = 256  # cap: larger requests are clamped to it
    default_new_tokens: int = 128
    max_time_s: float = 30.0  # per answer, passed to generate(max_time=...)
    max_temperature: float = 2.0
    concurrency: int = 1  # model jobs at a time (compare, evaluate share one queue slot)
    max_queue: int = 16  # model requests running or waiting; more are refused at once
    max_eval_rows: int = 50
    max_eval_row_chars: int = 8000  # any field of an evaluated row
    eval_max_new_tokens: int = 64
    max_upload_mb: int = 5
    max_answer_chars: int = 8000  # answers sent to /rate
    ratings_push_minutes: float = 5.0  # CommitScheduler period, with ratings_dataset
    max_ratings_per_session: int = 100  # a visitor's page (or API client) session
    pair_minutes: float = 60.0  # a generated pair can be rated for this long
    # Train tab, the owner's (one training at a time; the others wait in max_train_queue)
    max_train_upload_mb: int = 50
    max_train_rows: int = 20000
    max_train_steps: int = 2000
    max_sequence_len: int = 2048
    max_train_tokens: int = 8_192_000  # training and evaluation tokens of one run
    max_train_queue: int = 4
    keep_train_runs: int = 20  # older finished runs that are not served are deleted
    stop_grace_s: float = 120.0  # after Stop: time to checkpoint before the child is killed


LIMITS_ENV = "FT_PLUGIN_"  # FT_PLUGIN_MAX_TRAIN_STEPS=500 sets Limits.max_train_steps


def limits_from(config: dict[str, Any], environ: dict[str, str], source: str) -> Limits:
    """:class:`Limits` with the owner's settings: ``limits:`` in config.yaml, then
    ``FT_PLUGIN_<NAME>`` environment variables (they win).

    Example:
        >>> environ = {"FT_PLUGIN_MAX_TRAIN_ROWS": "900"}
        >>> limits = limits_from({"limits": {"max_train_steps": 50}}, environ, "config.yaml")
        >>> limits.max_train_steps, limits.max_train_rows
        (50, 900)
    """
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(Limits)}
    chosen = dict(config.get("limits") or {})
    unknown = [k for k in chosen if k not in fields]
    if unknown:
        raise UserError(
            f"{source}: limits.{unknown[0]} is not a Space limit; known: {', '.join(fields)}"
        )
    chosen |= {name: environ[LIMITS_ENV + name.upper()] for name in fields
               if LIMITS_ENV + name.upper() in environ}  # fmt: skip
    values = {}
    for name, raw in chosen.items():
        kind = type(getattr(Limits(), name))
        try:
            values[name] = kind(raw)
        except (TypeError, ValueError):
            raise UserError(f"{source}: limits.{name}: {raw!r} is not a {kind.__name__}") from None
    return Limits(**values)


@dataclass
class SpaceConfig:
    """What config.yaml (and the environment) says: what to serve, where to write, who
    owns the Space, what it may train."""

    targets: list[str]  # none: the Space opens on Train
    data_dir: Path
    ratings_dataset: str | None = None
    limits: Limits = field(default_factory=Limits)
    admins: list[str] = field(default_factory=list)  # owners' user names
    base_models: list[str] = field(default_factory=list)  # none: embedded + served bases
    train: bool = True  # false: no training, serving of new runs or publishing


def _names(config: dict[str, Any], key: str, environ: dict[str, str], source: str) -> list[str]:
    """A list setting: ``FT_PLUGIN_<KEY>`` (comma list) wins over config.yaml's list."""
    raw = environ.get(LIMITS_ENV + key.upper()) or config.get(key) or []
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, list):
        raise UserError(f"{source}: {key}: expected a list of names")
    return [str(item).strip() for item in raw if str(item).strip()]


def _switch(config: dict[str, Any], key: str, environ: dict[str, str], source: str) -> bool:
    raw = environ.get(LIMITS_ENV + key.upper(), config.get(key, True))
    if isinstance(raw, bool):
        return raw
    if str(raw).strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return str(raw).strip().lower() in ("true", "1", "yes", "on")
    raise UserError(f"{source}: {key}: expected true or false, got {raw!r}")


def _read_config_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise UserError(f"{path}: not valid YAML") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a mapping (adapter:, data_dir:, …)")
    return config


def read_space_config(
    folder: Path, environ: dict[str, str] | None = None, *, file: str = CONFIG_FILE
) -> SpaceConfig:
    """Adapter id(s), data folder and ratings dataset: environment first, then config.yaml.

    Example:
        >>> read_space_config(Path("no-such-folder"), {"FT_PLUGIN_ADAPTER": "me/a,me/b"}).targets
        ['me/a', 'me/b']
    """
    environ = dict(os.environ if environ is None else environ)
    path = Path(folder) / file
    config = _read_config_yaml(path)
    unknown = [key for key in config if key not in CONFIG_KEYS]
    if unknown:  # a typo (admin: for admins:) must not leave the Space open
        raise UserError(
            f"{path.name}: {unknown[0]} is not a Space setting; known: {', '.join(CONFIG_KEYS)}"
        )
    raw = environ.get("FT_PLUGIN_ADAPTER") or config.get("adapters") or config.get("adapter")
    if isinstance(raw, str):
        raw = raw.split(",")
    targets = [str(t).strip() for t in raw or [] if str(t).strip()]
    data_dir = Path(environ.get("FT_PLUGIN_DATA_DIR") or config.get("data_dir") or "space_data")
    if not data_dir.is_absolute():
        data_dir = Path(folder) / data_dir
    dataset = environ.get("FT_PLUGIN_RATINGS_DATASET") or config.get("ratings_dataset") or None
    name = path.name
    return SpaceConfig(targets, data_dir, dataset, limits_from(config, environ, name),
                       admins=_names(config, "admins", environ, name),
                       base_models=_names(config, "base_models", environ, name),
                       train=_switch(config, "train", environ, name))  # fmt: skip
