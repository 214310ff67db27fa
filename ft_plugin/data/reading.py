"""Reading raw rows from wherever a recipe says they are, as Axolotl finds them.

Local JSON Lines are read by us, line by line, so that a malformed line is reported
with its file and line number and memory stays flat; a `.txt` file is one document
(`{"text": ...}`, for raw-text training and perplexity); every other format (json, csv,
tsv, parquet, arrow, a folder of such files, a folder saved with `save_to_disk`, a Hub
dataset id with `name` / `data_files` / `revision`) goes through `datasets`. Local text
files are decoded in their own encoding (`encoding.file_encoding`: declared, or detected
and confirmed on the whole file).

`split` takes `datasets`' syntax (`train[:20%]`, `train[10:100]`, `train[-5%:]`): a Hub
dataset or a folder of files slices it in `datasets`; a single local file is one split,
whatever its name, and the slice applies to its rows. :func:`stream_rows` reads rows
one at a time for `streaming: true`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import DataError
from ft_plugin.registry import BUILTIN_TEMPLATES_DIR

from .encoding import SAMPLE_BYTES, TEXT_SUFFIXES, _canonical, file_encoding

if TYPE_CHECKING:
    from ft_plugin.config.schema import DatasetSection

BUILTIN_PREFIX = "builtin:"
SAMPLES_DIR = BUILTIN_TEMPLATES_DIR / "samples"
_FORMATS = {".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet",
            ".arrow": "arrow"}  # fmt: skip
_SUFFIXES = "jsonl, json, csv, tsv, txt, parquet, arrow"
# A folder `save_to_disk` wrote (a Dataset, or a DatasetDict).
_SAVED_MARKERS = ("dataset_dict.json", "state.json")
_STREAM_BLOCK_CHARS = 1 << 20  # a streamed .txt file: documents of about this many characters
_PLAIN_SLICE = re.compile(r"^(?P<name>[\w.-]+)(\[(?P<start>[\d_]+)?:(?P<stop>[\d_]+)?\])?$")


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
    """All rows of a dataset's ``split`` as plain dicts; ``encoding`` overrides detection
    for local text.

    Example:
        >>> rows = read_rows("builtin:medical")
        >>> {"instruction", "output"} <= set(rows[0])
        True
        >>> len(read_rows("builtin:medical", split="train[:10]"))
        10
    """
    if path.startswith(BUILTIN_PREFIX):
        rows = list(iter_jsonl(builtin_sample_path(path[len(BUILTIN_PREFIX) :])))
        return one_split(rows, split, path)
    local = Path(path).expanduser()
    if local.suffix in (".jsonl", ".txt") and not local.is_file():
        raise DataError(f"{path}: no such file")
    if local.suffix == ".jsonl":
        return one_split(list(iter_jsonl(local, local_encoding(path, encoding) or "utf-8")),
                         split, path)  # fmt: skip
    if local.suffix == ".txt":  # one document: chunked into windows for training
        text = local.read_text(encoding=local_encoding(path, encoding) or "utf-8")
        return one_split([{"text": text}], split, path)
    return _read_with_datasets(
        path, local, split=split, name=name, data_files=data_files, revision=revision,
        encoding=local_encoding(path, encoding),
    )  # fmt: skip


def rows_of(spec: DatasetSection) -> list[dict[str, Any]]:
    """The rows a recipe's `datasets` entry names: its split, config, files, revision and
    encoding, less its first `skip` rows."""
    rows = read_rows(spec.path, split=spec.split, name=spec.name, data_files=spec.data_files,
                     revision=spec.revision, encoding=spec.encoding)  # fmt: skip
    return rows[spec.skip :] if spec.skip else rows


def _bounds(split: str, sizes: dict[str, int], path: str) -> list[tuple[str, int, int]]:
    """``(split name, start, stop)`` of each part of ``split`` (datasets' own arithmetic)."""
    from datasets import ReadInstruction

    for name in split_names(split):
        if name not in sizes:
            raise DataError(f"{path}: no split {name!r}; its splits: {', '.join(sizes)}")
    try:
        parts = ReadInstruction.from_spec(split).to_absolute(sizes)
    except (ValueError, AssertionError) as exc:
        raise DataError(f"{path}: split {split!r}: {exc}") from None
    return [(part.splitname, part.from_, part.to) for part in parts]


def split_names(split: str) -> list[str]:
    """The split names a ``split`` expression reads, in order.

    Example:
        >>> split_names("train[:10%]+test[-5:]")
        ['train', 'test']
    """
    return [part.split("[")[0].split("(")[0].strip() for part in re.split(r"\s*\+\s*", split)]


def one_split(rows: list[dict[str, Any]], split: str, path: str) -> list[dict[str, Any]]:
    """``rows`` (a file's: one split) sliced as ``split`` says (``train[:20%]``, …).

    Example:
        >>> [r["n"] for r in one_split([{"n": i} for i in range(10)], "train[-20%:]", "x.jsonl")]
        [8, 9]
    """
    names = set(split_names(split))
    if len(names) > 1:
        raise DataError(
            f"{path}: split {split!r} names {len(names)} splits; a file is one split "
            "(write e.g. train[:80%])"
        )
    name = names.pop()
    picked: list[dict[str, Any]] = []
    for _, start, stop in _bounds(split, {name: len(rows)}, path):
        picked += rows[start:stop]
    return picked


def _saved_splits(loaded: Any, split: str, path: str) -> list[dict[str, Any]]:
    """A folder written by ``save_to_disk``: the parts of ``split`` from its splits."""
    import datasets

    splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else None
    if splits is None:  # one Dataset: a single split, whatever its name
        return one_split(list(loaded), split, path)
    rows: list[dict[str, Any]] = []
    for name, start, stop in _bounds(split, {k: len(v) for k, v in splits.items()}, path):
        rows += list(splits[name].select(range(start, stop)))
    return rows


def _is_saved_folder(local: Path) -> bool:
    return any((local / marker).is_file() for marker in _SAVED_MARKERS)


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


def _file_options(local: Path, encoding: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"delimiter": "\t"} if local.suffix == ".tsv" else {}
    if encoding:
        extra["encoding"] = encoding
    return extra


def _load(path: str, local: Path, *, streaming: bool = False, **options: Any) -> Any:
    """The ``datasets`` object for a non-JSON-Lines source (``split`` only read for folders
    of files and the Hub: a file is one split, sliced by the caller)."""
    import datasets

    if local.is_dir() and _is_saved_folder(local):
        return datasets.load_from_disk(str(local))
    if local.is_dir():  # a folder of data files: datasets finds the format and the splits
        with _quiet_progress():
            return datasets.load_dataset(str(local), data_files=options["data_files"],
                                         split=options["split"], streaming=streaming)  # fmt: skip
    if local.suffix in _FORMATS:
        if not local.is_file():
            raise DataError(f"{path}: no such file")
        with _quiet_progress():  # a local file loads in a blink; its bars are noise
            return datasets.load_dataset(
                _FORMATS[local.suffix], data_files=str(local), split="train", streaming=streaming,
                **_file_options(local, options["encoding"]),
            )  # fmt: skip
    if local.suffix or path.startswith((".", "/", "~")):
        raise DataError(f"{path}: no such file, or an unsupported format ({_SUFFIXES})")
    return datasets.load_dataset(  # a Hub dataset id
        path, options["name"], split=options["split"], data_files=options["data_files"],
        revision=options["revision"], streaming=streaming,
    )  # fmt: skip


@contextmanager
def _load_errors(path: str) -> Iterator[None]:
    """`datasets`' many exception types, as one line naming the source."""
    try:
        yield
    except DataError:
        raise
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: cannot load: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # datasets raises many types for a malformed file
        raise DataError(
            f"{path}: cannot parse: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from None


def _read_with_datasets(path: str, local: Path, **options: Any) -> list[dict[str, Any]]:
    import datasets

    with _load_errors(path):
        loaded = _load(path, local, **options)
        if isinstance(loaded, datasets.DatasetDict) or (local.is_dir() and _is_saved_folder(local)):
            return _saved_splits(loaded, options["split"], path)
        if local.is_file():
            return one_split(list(loaded), options["split"], path)
        return list(loaded)


# ── streaming ───────────────────────────────────────────────────────────────────────────


def _stream_encoding(path: Path, declared: str | None) -> str:
    """A streamed file's encoding, chosen on its first bytes (not a whole-file pass);
    a later undecodable line is reported with its line number when it is reached."""
    if declared:
        return _canonical(declared)
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    try:
        sample.decode("utf-8")
        return "utf-8-sig" if sample.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # a character cut by the end of the sample
            return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    return _canonical(best.encoding) if best is not None else "utf-8"


def _text_blocks(path: Path, encoding: str) -> Iterator[dict[str, Any]]:
    """A streamed ``.txt`` file as documents of about 1 MB, cut at line ends (a file up to
    that size is the one document reading it whole gives)."""
    block: list[str] = []
    size = 0
    with path.open("r", encoding=encoding) as handle:
        for line in handle:
            block.append(line)
            size += len(line)
            if size >= _STREAM_BLOCK_CHARS:
                yield {"text": "".join(block)}
                block, size = [], 0
    if block:
        yield {"text": "".join(block)}


def _streamed_slice(
    rows: Iterable[dict[str, Any]], split: str, path: str
) -> Iterator[dict[str, Any]]:
    match = _PLAIN_SLICE.match(split)
    if match is None:
        raise DataError(
            f"{path}: split {split!r}: streamed rows have no count, so only a row range from "
            "the start works (e.g. train[:1000], train[500:]); turn streaming off for this one"
        )
    start, stop = (int(v) if v else None for v in (match["start"], match["stop"]))
    return itertools.islice(rows, start or 0, stop)


def stream_rows(spec: DatasetSection) -> Iterator[dict[str, Any]]:
    """The rows of ``spec`` one at a time (``streaming: true``), its ``split`` range and
    ``skip`` applied, without reading the whole source first.

    Local JSON Lines and text files are read line by line here; other formats and Hub
    datasets through ``datasets`` streaming (an ``IterableDataset``).
    """
    path, split = spec.path, spec.split
    local = Path(path).expanduser()
    if path.startswith(BUILTIN_PREFIX):
        rows: Iterable[dict[str, Any]] = iter_jsonl(
            builtin_sample_path(path[len(BUILTIN_PREFIX) :])
        )
    elif local.suffix in (".jsonl", ".txt"):
        if not local.is_file():
            raise DataError(f"{path}: no such file")
        encoding = _stream_encoding(local, spec.encoding)
        rows = (
            iter_jsonl(local, encoding)
            if local.suffix == ".jsonl"
            else _text_blocks(local, encoding)
        )
    else:
        match = _PLAIN_SLICE.match(split)
        name = match["name"] if match else split
        with _load_errors(path):
            loaded = _load(path, local, streaming=True, split=name, name=spec.name,
                           data_files=spec.data_files, revision=spec.revision,
                           encoding=spec.encoding)  # fmt: skip
            if hasattr(loaded, "keys"):  # a saved DatasetDict
                if name not in loaded:
                    raise DataError(f"{path}: no split {name!r}; its splits: {', '.join(loaded)}")
                loaded = loaded[name]
            if hasattr(loaded, "to_iterable_dataset"):  # a saved Dataset: stream its shards
                loaded = loaded.to_iterable_dataset()
        rows = iter(loaded)
    rows = _streamed_slice(rows, split, path)
    return itertools.islice(rows, spec.skip or 0, None)
