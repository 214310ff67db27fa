"""The environment a child process gets: everything but the secrets.

Example:
    >>> sorted(child_environment({"HF_TOKEN": "hf_secret-value", "PATH": "/bin"}))
    ['HF_HUB_DISABLE_IMPLICIT_TOKEN', 'HF_TOKEN_PATH', 'PATH']
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# Environment names that hold secrets: Hub tokens, OAuth secrets, the login, cloud keys.
# Whole name parts only: TOKENIZERS_PARALLELISM is not a token.
SECRET_NAME = re.compile(
    r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|API_?KEY|ACCESS_KEY|AUTH)(_|$)",
    re.IGNORECASE,
)
MIN_SECRET_CHARS = 8  # shorter values are not secrets worth hiding (and would hide words)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the environment's secret variables (longest first)."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def child_environment(environ: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``environ`` without its secrets, for a child process that needs none.

    ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` and an empty ``HF_TOKEN_PATH`` keep
    ``huggingface_hub`` from reading the token the Space's user saved on disk.

    Example:
        >>> env = child_environment({"HF_TOKEN": "hf_secret-value", "PATH": "/bin",
        ...                          "TOKENIZERS_PARALLELISM": "false"})
        >>> sorted(env)
        ['HF_HUB_DISABLE_IMPLICIT_TOKEN', 'HF_TOKEN_PATH', 'PATH', 'TOKENIZERS_PARALLELISM']
    """
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if not SECRET_NAME.search(k)}
    env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    env["HF_TOKEN_PATH"] = os.devnull  # an empty file: no token
    return {**env, **extra}
