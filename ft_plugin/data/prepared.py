"""`dataset_prepared_path`: the prepared rows of a recipe, saved once and read back.

As in Axolotl, what is saved is the data stage's output for the model's tokenizer (read,
converted, mixed, split, over-long rows dropped, ``chat_template`` rows tokenized), in a
folder named by a hash of everything that output depends on:

- the recipe's data keys (every key of the ``datasets`` section, ``sequence_len``,
  ``seed``, ``replay``, ``chat_template``, ``eot_tokens``),
- each local source's size and modification time (Axolotl hashes the path only, so an
  edited file kept being read from the stale copy), and a Hub source's id and revision,
- the tokenizer: its vocabulary and merges, special tokens and chat template.

A changed key, file or tokenizer names a new folder, so the next run prepares afresh;
the same recipe finds its folder and reads no source at all. Folders are written under a
temporary name and renamed into place, so a killed run or a second process never leaves
a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import DataError

from .reading import BUILTIN_PREFIX, builtin_sample_path

if TYPE_CHECKING:
    from ft_plugin.config import Recipe

    from .examples import TrainingData

FORMAT_VERSION = 1  # bump when the saved rows change shape
_INFO = "prepared.json"
_RECIPE_KEYS = ("sequence_len", "seed", "replay", "chat_template", "eot_tokens")


def _data_keys(recipe: Recipe) -> dict[str, Any]:
    from ft_plugin.config.schema.data_loading import DatasetsSection

    names = {*DatasetsSection.model_fields, *_RECIPE_KEYS} - {"dataset_prepared_path"}
    return recipe.model_dump(mode="json", include=names & set(type(recipe).model_fields))


def _stat(path: Path) -> list[Any]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def source_fingerprint(path: str) -> Any:
    """What identifies a source's contents: a local file's (or folder's files') size and
    modification time, a Hub id as itself (its revision is a recipe key)."""
    if path.startswith(BUILTIN_PREFIX):
        return _stat(builtin_sample_path(path[len(BUILTIN_PREFIX) :]))
    local = Path(path).expanduser()
    if local.is_file():
        return _stat(local)
    if local.is_dir():
        return sorted(
            [str(p.relative_to(local)), *_stat(p)] for p in local.rglob("*") if p.is_file()
        )
    return path


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """A hash of what the tokenizer does to text: vocabulary and merges (or the vocabulary
    of a tokenizer without a ``tokenizers`` backend), special tokens and chat template."""
    if tokenizer is None:
        return None
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    extra = [type(tokenizer).__name__, len(tokenizer), str(tokenizer.chat_template),
             sorted(map(str, tokenizer.special_tokens_map.items()))]  # fmt: skip
    digest.update(json.dumps(extra, default=str).encode())
    return digest.hexdigest()


def _jinja_files(recipe: Recipe) -> list[Any]:
    """Chat templates given as files: their contents count, not their names."""
    values = [recipe.chat_template_jinja, *(s.chat_template_jinja for s in recipe.datasets)]
    return [_stat(Path(v).expanduser()) for v in values
            if v and "{" not in v and Path(v).expanduser().is_file()]  # fmt: skip


def prepared_key(recipe: Recipe, tokenizer: Any, group_by: str | None = None) -> str:
    """The folder name of ``recipe``'s prepared rows for ``tokenizer``."""
    specs = [*recipe.datasets, *(recipe.test_datasets or []),
             *(recipe.replay.datasets if recipe.replay else [])]  # fmt: skip
    payload = {
        "version": FORMAT_VERSION,
        "keys": _data_keys(recipe),
        "sources": [source_fingerprint(spec.path) for spec in specs],
        "jinja": _jinja_files(recipe),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "group_by": group_by,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class PreparedStore:
    """Where one recipe's prepared rows live: ``dataset_prepared_path/KEY``."""

    folder: Path

    @classmethod
    def for_recipe(
        cls, recipe: Recipe, tokenizer: Any, group_by: str | None = None
    ) -> PreparedStore:
        root = Path(str(recipe.dataset_prepared_path)).expanduser()
        return cls(root / prepared_key(recipe, tokenizer, group_by))

    def load(self) -> TrainingData | None:
        """The saved rows, or None when this recipe has none here yet."""
        from datasets import load_from_disk

        from .examples import TrainingData

        info_file = self.folder / _INFO
        if not info_file.is_file():
            return None
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
            train = load_from_disk(str(self.folder / "train"))
            held_out = load_from_disk(str(self.folder / "eval")) if info["eval"] else None
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"dataset_prepared_path: {self.folder} is damaged ({exc}); delete it to prepare again"
            ) from None
        note = (
            f"dataset_prepared_path: read the prepared rows from {self.folder} (sources not read)"
        )
        return TrainingData(train, held_out, Counter(info["dropped"]), info["lengths"],
                            [*info["notes"], note])  # fmt: skip

    def save(self, data: TrainingData) -> str:
        """Write ``data`` here (atomically); the note to print."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}-", dir=self.folder.parent))
        try:
            data.train.save_to_disk(str(staging / "train"))
            if data.eval is not None:
                data.eval.save_to_disk(str(staging / "eval"))
            info = {"dropped": dict(data.dropped), "lengths": data.lengths, "notes": data.notes,
                    "eval": data.eval is not None, "version": FORMAT_VERSION}  # fmt: skip
            (staging / _INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
            try:
                os.replace(staging, self.folder)
            except OSError:  # another process saved the same rows first: keep theirs
                if not (self.folder / _INFO).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return f"dataset_prepared_path: saved the prepared rows to {self.folder}"
