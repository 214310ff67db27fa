"""Errors a user can act on.

Every exception derived from :class:`UserError` is reported by the CLI as one line on
stderr with exit code 2 and no traceback; anything else is a bug (exit code 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user gave us (recipe, data, paths, flags)."""


class RecipeError(UserError):
    """A recipe that cannot be loaded or validated.

    The message always reads ``FILE:LINE: KEY.PATH: what is wrong`` (line and key path
    are left out only when they do not exist, e.g. an unreadable file).

    Example:
        >>> str(RecipeError("lora_rr: unknown key", file="r.yaml", line=4))
        'r.yaml:4: lora_rr: unknown key'
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        self.file = file
        self.line = line
        self.detail = message
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(f"{where}{message}")


class DataError(UserError):
    """A dataset that cannot be read, or that has no usable rows."""


class MissingDependencyError(UserError):
    """An optional dependency that the recipe needs is not installed."""
