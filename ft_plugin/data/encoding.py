"""The text encoding of a local data file: declared or detected, then confirmed on all of it.

Files arrive as they were published: GB18030 Chinese medical dialogues, UTF-16 exports
from spreadsheets, Latin-1 CSVs. Detection is ``charset-normalizer``'s (a maintained
library; it reads a sample), and the chosen encoding is then checked by decoding the
whole file incrementally, so a file that changes encoding half way fails here, with
the byte offset, rather than as a parser error or mojibake later.
"""

from __future__ import annotations

import codecs
from functools import lru_cache
from pathlib import Path

from ft_plugin.errors import DataError

SAMPLE_BYTES = 4 << 20  # what charset-normalizer reads to choose
_CHUNK = 1 << 20
TEXT_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt")


def _first_undecodable(path: Path, encoding: str) -> tuple[int, str] | None:
    """(byte offset, reason) of the first byte ``encoding`` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return offset - pending + exc.start, exc.reason
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return offset + exc.start, exc.reason
    return None


def _canonical(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(
            f"encoding: {encoding!r} is not an encoding Python knows (e.g. utf-8, gb18030, utf-16, "
            "latin-1, cp1252)"
        ) from None


def _has_utf8_bom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(3) == codecs.BOM_UTF8


@lru_cache(maxsize=256)
def _resolve(path: Path, size: int, mtime_ns: int, declared: str | None) -> str:
    if declared:
        encoding = _canonical(declared)
        failure = _first_undecodable(path, encoding)
        if failure:
            offset, reason = failure
            raise DataError(
                f"{path}: byte {offset:,} cannot be decoded as {encoding} ({reason}); "
                "the encoding given is not the file's: remove it to detect, or give another"
            )
        return encoding
    if _first_undecodable(path, "utf-8") is None:
        return "utf-8-sig" if _has_utf8_bom(path) else "utf-8"
    from charset_normalizer import from_bytes

    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    tried = []
    for match in from_bytes(sample):
        encoding = _canonical(match.encoding)
        failure = _first_undecodable(path, encoding)
        if failure is None:
            return encoding
        tried.append((encoding, failure))
    if not tried:
        raise DataError(
            f"{path}: not text in any encoding charset-normalizer knows (a binary file?); "
            "give encoding: in the dataset entry (or --encoding) if it is text"
        )
    encoding, (offset, reason) = tried[0]
    raise DataError(
        f"{path}: byte {offset:,} cannot be decoded as {encoding} ({reason}), the best guess; "
        "give the file's encoding with encoding: in the dataset entry or --encoding"
    )


def file_encoding(path: str | Path, declared: str | None = None) -> str:
    """The Python codec that decodes all of ``path``: ``declared`` if given, else detected.

    Raises a one-line ``DataError`` naming the file, the byte offset and the encoding
    tried when no encoding decodes the whole file.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as f:
        ...     _ = f.write("问题,回答\\n发烧怎么办？,多喝水，注意休息。\\n".encode("gb18030"))
        >>> file_encoding(f.name)
        'gb18030'
    """
    local = Path(path).expanduser().resolve()
    stat = local.stat()
    return _resolve(local, stat.st_size, stat.st_mtime_ns, declared)
