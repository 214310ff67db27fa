"""Errors a user can act on.

Every exception derived from :class:`UserError` is reported by the CLI as one line on
stderr with exit code 2 and no traceback; anything else is a bug (exit code 1).
"""

from __future__ import annotations

import sys


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


class RecipeErrors(RecipeError):
    """Every problem of one recipe, one :class:`RecipeError` each: ``str()`` is one line
    per problem (the CLI prints each as an ``error:`` line).

    Example:
        >>> both = RecipeErrors([RecipeError("a: bad", file="r.yaml", line=1),
        ...                      RecipeError("b: bad", file="r.yaml", line=2)])
        >>> print(both)
        r.yaml:1: a: bad
        r.yaml:2: b: bad
    """

    def __init__(self, errors: list[RecipeError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.detail, file=first.file, line=first.line)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class DataError(UserError):
    """A dataset that cannot be read, or that has no usable rows."""


class MissingDependencyError(UserError):
    """An optional dependency that the recipe needs is not installed."""


def report(exc: UserError) -> int:
    """Print ``exc`` as the command line does, one ``error:`` line per problem on stderr
    (a recipe reports all of its own), and return the exit code, 2."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)
    return 2
