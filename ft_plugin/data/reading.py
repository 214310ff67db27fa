"""Reading raw rows from wherever a recipe says they are.

Local JSON Lines are read by us, line by line, so that a malformed line is reported
with its file and line number and memory stays flat; a `.txt` file is one document
(`{"text": ...}`, for raw-text training and perplexity); every other format (json, csv,
tsv, parquet, a saved `datasets` folder, a Hub dataset) goes through `datasets`. Local
text files are decoded in their own encoding (`encoding.file_encoding`: declared, or
detected and confirmed on the whole file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ft_plugin.errors import DataError
from ft_plugin.registry import BUILTIN_TEMPLATES_DIR

from .encoding import TEXT_SUFFIXES, file_encoding

BUILTIN_PREFIX = "builtin:"
SAMPLES_DIR = BUILTIN_TEMPLATES_DIR / "samples"
_FORMATS = {".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def builtin_sample_path(name: str) -> Path:
    """The sample data shipped for template ``name`` (``builtin:NAME`` in a recipe)."""
    path = SAMPLES_DIR / f"{name}.jsonl"
    if not path.is_file():
        known = sorted(p.stem for p in SAMPLES_DIR.glob("*.jsonl"))
        raise DataError(
            f"{BUILTIN_PREFIX}{name}: no such builtin dataset; known: {', '.join(known)}"
        )
    return path


def local_encoding(path: str, declared: str | None = None) -> str | None:
    """The encoding a local text file is read in; None for builtin, binary or remote data."""
    if path.startswith(BUILTIN_PREFIX):
        return None
    local = Path(path).expanduser()
    if local.suffix not in TEXT_SUFFIXES or not local.is_file():
        return None
    return file_encoding(local, declared)


def iter_jsonl(path: Path, encoding: str = "utf-8") -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON Lines file; a bad line is a DataError naming file and line."""
    try:
        handle = path.open("r", encoding=encoding)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})"
                    ) from None
                if not isinstance(row, dict):
                    raise DataError(
                        f"{path}:{number}: expected a JSON object, got {type(row).__name__}"
                    )
                yield row
        except UnicodeDecodeError:
            raise DataError(f"{path}:{number + 1}: not {encoding} text (binary file?)") from None


def iter_rows(path: str, encoding: str | None = None, **options: Any) -> Iterator[dict[str, Any]]:
    """Rows one at a time: JSON Lines (local or builtin) stream; other formats load first."""
    if path.startswith(BUILTIN_PREFIX):
        yield from iter_jsonl(builtin_sample_path(path[len(BUILTIN_PREFIX) :]))
    elif path.endswith(".jsonl"):
        if not Path(path).expanduser().is_file():
            raise DataError(f"{path}: no such file")
        yield from iter_jsonl(Path(path).expanduser(), local_encoding(path, encoding) or "utf-8")
    else:
        yield from read_rows(path, encoding=encoding, **options)


def read_rows(
    path: str,
    *,
    split: str = "train",
    name: str | None = None,
    data_files: str | list[str] | None = None,
    revision: str | None = None,
    encoding: str | None = None,
) -> list[dict[str, Any]]:
    """All rows of a dataset as plain dicts; ``encoding`` overrides detection for local text.

    Example:
        >>> rows = read_rows("builtin:medical")
        >>> {"instruction", "output"} <= set(rows[0])
        True
    """
    if path.startswith(BUILTIN_PREFIX):
        return list(iter_jsonl(builtin_sample_path(path[len(BUILTIN_PREFIX) :])))
    local = Path(path).expanduser()
    if local.suffix in (".jsonl", ".txt") and not local.is_file():
        raise DataError(f"{path}: no such file")
    if local.suffix == ".jsonl":
        return list(iter_jsonl(local, local_encoding(path, encoding) or "utf-8"))
    if local.suffix == ".txt":  # one document: chunked into windows for training
        return [{"text": local.read_text(encoding=local_encoding(path, encoding) or "utf-8")}]
    return _read_with_datasets(
        path, local, split=split, name=name, data_files=data_files, revision=revision,
        encoding=local_encoding(path, encoding),
    )  # fmt: skip


@contextmanager
def _quiet_progress() -> Iterator[None]:
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _read_with_datasets(path: str, local: Path, **options: Any) -> list[dict[str, Any]]:
    import datasets

    try:
        if local.is_dir():
            loaded = datasets.load_from_disk(str(local))
            if isinstance(loaded, datasets.DatasetDict):
                loaded = loaded[options["split"]]
        elif local.suffix in _FORMATS:
            if not local.is_file():
                raise DataError(f"{path}: no such file")
            extra = {"delimiter": "\t"} if local.suffix == ".tsv" else {}
            if options["encoding"]:
                extra["encoding"] = options["encoding"]
            with _quiet_progress():  # a local file loads in a blink; its bars are noise
                loaded = datasets.load_dataset(
                    _FORMATS[local.suffix], data_files=str(local), split="train", **extra
                )
        elif local.suffix or path.startswith((".", "/", "~")):
            raise DataError(
                f"{path}: no such file, or an unsupported format (jsonl, json, csv, tsv, txt, parquet)"
            )
        else:
            loaded = datasets.load_dataset(
                path,
                options["name"],
                split=options["split"],
                data_files=options["data_files"],
                revision=options["revision"],
            )
    except DataError:
        raise
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: cannot load: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # datasets raises many types for a malformed file
        raise DataError(
            f"{path}: cannot parse: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from None
    return list(loaded)
