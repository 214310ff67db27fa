"""Axolotl's config keys, as data: every key of the pinned Axolotl schema is one of

- **honoured**: a recipe key of ours (a field of :class:`~ft_plugin.config.schema.Recipe`
  or of a dataset entry), mapped onto TRL / PEFT / transformers / accelerate;
- **no effect here**: accepted; the run prints one line saying why (``keys.yaml``,
  ``no_effect:``);
- **refused**: one line with the reason and what to write instead (``keys.yaml``,
  ``refused:``).

``schema-VERSION.tsv`` is the pinned schema's key list (read from Axolotl's wheel by
:mod:`.schema_extract`); a test checks that the three groups cover it. As in Axolotl, a
key left empty (YAML null), ``false`` or ``[]`` asks for nothing: it is dropped before
validation, and a no-effect or refused key with such a value says nothing.

Example:
    >>> explain_key("flash_attention", True)[0]
    'no effect'
    >>> explain_key("lora_r", 8)
    ('honoured', '')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ft_plugin.errors import RecipeError

from ..yaml_source import Located, Origin

AXOLOTL_VERSION = "0.21.0"
HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE / f"schema-{AXOLOTL_VERSION}.tsv"
TABLE_FILE = HERE / "keys.yaml"
DATASET_GROUPS = ("datasets", "test_datasets", "pretraining_dataset")
# Kinds of training ft-plugin does not do: a config that asks for one gets one line naming
# it (not one per key), whatever else it sets.
GATES = (
    (("processor_type", "processor_kwargs", "image_size", "image_resize_algorithm",
      "freeze_mm_modules", "role_boundaries"),
     "a vision or audio model: ft-plugin trains text-only causal language models; "
     "vision, audio and multimodal fine-tuning are not supported (use Axolotl for it)"),
    (("diffusion", "diffusion_lm", "diffusion_decision"),
     "a diffusion language model: ft-plugin trains autoregressive causal language models; "
     "diffusion training is not supported (use Axolotl for it)"),
    (("reward_model", "process_reward_model", "ebft"),
     "reward-model and online RL training are not supported; preference tuning is: "
     "rl: dpo, ipo, orpo, kto or simpo"),
)  # fmt: skip


@dataclass(frozen=True)
class KeyTable:
    """The keys of the pinned schema that are not ours: no effect here, or refused."""

    no_effect: dict[str, str]
    refused: dict[str, str]
    neutral: dict[str, list[Any]]  # values of a table key that ask for nothing (say nothing)

    def status(self, key: str) -> tuple[str, str] | None:
        """``("no effect" | "refused", reason)`` for a table key, else None."""
        if key in self.no_effect:
            return "no effect", self.no_effect[key]
        if key in self.refused:
            return "refused", self.refused[key]
        return None


@functools.cache
def key_table() -> KeyTable:
    """``keys.yaml``, read once."""
    data = yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8")) or {}
    return KeyTable(dict(data.get("no_effect") or {}), dict(data.get("refused") or {}),
                    dict(data.get("neutral") or {}))  # fmt: skip


@functools.cache
def pinned_keys() -> dict[str, str]:
    """Every key of the pinned Axolotl schema (``datasets.KEY`` for a dataset entry's) and
    the class that defines it."""
    rows = [line.split("\t") for line in SCHEMA_FILE.read_text(encoding="utf-8").splitlines()]
    return {row[0]: row[1] for row in rows if row and row[0]}


def asks_nothing(value: Any) -> bool:
    """A value that sets nothing: empty (null), false, or an empty list or mapping."""
    return value is None or value is False or value == [] or value == {}


@dataclass
class Screened:
    """What screening a recipe found: notes for the run, refusals (all of them), or the
    one refusal of a kind of training we do not do (``gate``: nothing else is checked)."""

    notes: list[str]
    errors: list[RecipeError]
    gate: RecipeError | None = None


def screen(doc: Located) -> Screened:
    """Drop empty keys, and keys of the table (no effect: a note each; refused: an error
    each), from the merged recipe, top level and dataset entries, in place."""
    for keys, why in GATES:
        asked = [key for key in keys if not asks_nothing(doc.data.get(key))]
        if asked:
            origin = doc.origin_of((asked[0],)) or Origin("recipe")
            named = ", ".join(asked)
            return Screened([], [], RecipeError(f"{named}: {why}", file=origin.file,
                                                line=origin.line))  # fmt: skip
    found = Screened([], [])
    _screen_mapping(doc, doc.data, (), "", found)
    for group in DATASET_GROUPS:
        entries = doc.data.get(group)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                _screen_mapping(doc, entry, (group, index), "datasets.", found)
    return found


def _screen_mapping(
    doc: Located, data: dict[str, Any], at: tuple[Any, ...], prefix: str, found: Screened
) -> None:
    table, ours = key_table(), _our_fields(prefix)
    for key in list(data):
        value, path = data[key], (*at, key)
        status = None if key in ours else table.status(prefix + key)  # ours win
        if status and value in table.neutral.get(prefix + key, ()):
            status = None  # e.g. context_parallel_size: 1 asks for nothing
            del data[key]
            continue
        if value is None or (status and asks_nothing(value)):
            del data[key]  # Axolotl's semantics: empty means unset
            continue
        if status is None:
            continue
        origin = doc.origin_of(path) or Origin("recipe")
        shown = ".".join(map(str, path))
        if status[0] == "refused":
            found.errors.append(RecipeError(f"{shown}: {status[1]}", file=origin.file,
                                            line=origin.line))  # fmt: skip
        else:
            where = f"{origin.file}:{origin.line}: " if origin.line else f"{origin.file}: "
            found.notes.append(f"{where}{shown}: no effect here: {status[1]}")
        del data[key]


def _our_fields(prefix: str) -> frozenset[str]:
    from ..schema import Recipe
    from ..schema.datasets import DatasetSection

    return schema_keys(DatasetSection if prefix else Recipe)


def schema_keys(model: Any) -> frozenset[str]:
    """The keys a schema section reads: its fields and their other spellings (Axolotl's
    remapped names, ``validation_alias``), e.g. ``model_revision`` for ``base_model_revision``."""
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        keys.update(getattr(field.validation_alias, "choices", ()))
    return frozenset(keys)


def explain_key(key: str, value: Any) -> tuple[str, str]:
    """``(status, reason)`` of one top-level key (``datasets.KEY`` for an entry's): honoured,
    no effect, refused, ours (an ft-plugin key Axolotl lacks) or unknown."""
    from ..schema import Recipe
    from ..schema.datasets import DatasetSection

    ours = schema_keys(DatasetSection if key.startswith("datasets.") else Recipe)
    name = key.removeprefix("datasets.")
    if name in ours:
        return ("honoured", "") if key in pinned_keys() else ("ours", "an ft-plugin key")
    status = key_table().status(key)
    if status is not None and value in key_table().neutral.get(key, ()):
        return "unset", f"{value!r} asks for nothing here"
    if status is not None:
        return status
    return "unknown", f"not a key of ft-plugin or of Axolotl {AXOLOTL_VERSION}"
