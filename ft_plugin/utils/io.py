"""Small file helpers shared by every stage: outputs appear complete or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask  # what open() would give; mkstemp's 0600 hides files from others


@contextmanager
def atomic_writer(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text handle on a temporary file beside ``path``, renamed into place on success.

    On an exception nothing is left behind and ``path`` keeps its old content.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "rows.jsonl"
        >>> with atomic_writer(target) as out:
        ...     _ = out.write('{"text": "hi"}\\n')
        >>> target.read_text(), oct(target.stat().st_mode & 0o077) != "0o0"
        ('{"text": "hi"}\\n', True)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline=newline) as out:
            yield out
        os.chmod(staging, _default_mode())
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "metrics.json"
        >>> write_text_atomic(target, "{}").read_text()
        '{}'
    """
    with atomic_writer(path) as out:
        out.write(text)
    return path
