"""Secrets stay where they are needed: out of children, messages and what visitors see.

- :func:`~ft_plugin.utils.environment.child_environment` (shared with exports): the
  environment of a training child, without the Space's
  secrets (the Hub token included: publishing happens in the Space's own process) and
  without the token file ``huggingface_hub`` would otherwise read from disk.
- :func:`redact`: a message as shown on the page: secret values as ``***``, server
  paths as their file name, Markdown that could link or embed inert.

Example:
    >>> redact("cannot read /srv/space/data/train/x/data.csv with hf_abcdefgh1234",
    ...        secrets=["hf_abcdefgh1234"])
    'cannot read data.csv with ***'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ft_plugin.utils.environment import secret_values

_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/-])/(?:[^\s/'\"`:,;()\[\]<>]+/)+([^\s/'\"`:,;()\[\]<>]*)")
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]()<>!#|~])")


def redact(text: str, *, secrets: Iterable[str] | None = None, markdown: bool = False) -> str:
    """``text`` with secret values as ``***`` and absolute paths as their file name;
    with ``markdown``, characters that would make links, images or HTML escaped."""
    for value in secret_values() if secrets is None else secrets:
        if value:
            text = text.replace(value, "***")
    text = _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "…", text)
    return _MARKDOWN_ACTIVE.sub(r"\\\1", text) if markdown else text
