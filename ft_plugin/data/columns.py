"""Which column of a user's file fills which field of a template, and what to say when none does.

The command line takes ``--field NAME=COLUMN`` (repeatable) with the recipe's names:
``--field instruction=ask`` is ``field_instruction: ask``, and maps ``ask`` onto the
template field that accepts an ``instruction`` column; a template's own field names
(``--field question=Q`` for medical-pubmedqa) work too. Before any row is dropped for a
missing field, ``check_columns`` looks at the file's columns: a required field that no
column can fill is one error naming the file, the field, the names the template
accepts, the file's columns and the closest column as a suggestion: a near spelling of
an accepted name, else a column chosen by what it holds (questions for a field that asks,
longer text that is not questions for the answer), else none.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ft_plugin.errors import DataError, UserError

from .formats import CONVERTERS
from .templates import Template, load_template

# The recipe's field_* keys, by the column name each overrides (formats.AXOLOTL_FIELDS).
RECIPE_FIELD_NAMES = ("instruction", "input", "output", "system", "text", "label")
_NAME_SIMILARITY = 0.6  # above this, a column name is taken for a misspelling of the field


def parse_field_arguments(pairs: Iterable[str] | None, template: Template) -> dict[str, str]:
    """``["instruction=ask", …]`` → {template field: column}.

    Example:
        >>> from ft_plugin.data.templates import load_template
        >>> parse_field_arguments(["instruction=ask", "output=answer"], load_template("medical"))
        {'instruction': 'ask', 'output': 'answer'}
        >>> parse_field_arguments(["instruction=Q"], load_template("medical-pubmedqa"))
        {'question': 'Q'}
    """
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, column = pair.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise UserError(f"--field {pair}: expected NAME=COLUMN, e.g. --field instruction=ask")
        mapping[_template_field(name, template, pair)] = column
    return mapping


def parse_plain_field_arguments(pairs: Iterable[str] | None) -> dict[str, str]:
    """``--field`` for files read without a template (alpaca / chat / raw-text rows).

    Example:
        >>> parse_plain_field_arguments(["text=body"])
        {'text': 'body'}
    """
    mapping: dict[str, str] = {}
    names = (*RECIPE_FIELD_NAMES, "messages")
    for pair in pairs or []:
        name, sep, column = (part.strip() for part in pair.partition("="))
        if not sep or not column or name not in names:
            raise UserError(
                f"--field {pair}: expected NAME=COLUMN with NAME one of {', '.join(names)}, "
                "e.g. --field instruction=ask"
            )
        mapping[name] = column
    return mapping


def _template_field(name: str, template: Template, pair: str) -> str:
    if name in template.fields:
        return name
    if name in RECIPE_FIELD_NAMES:
        for field, accepted in template.fields.items():
            if name in accepted:
                return field
    known = sorted(
        set(template.fields) | {n for n in RECIPE_FIELD_NAMES if _accepting(template, n)}
    )
    raise UserError(
        f"--field {pair}: template {template.name} has no field {name!r}; fields: {', '.join(known)}"
    )


def _accepting(template: Template, name: str) -> bool:
    return any(name in accepted for accepted in template.fields.values())


def _fills(template: Template, field: str, mapping: dict[str, str], columns: set[str]) -> bool:
    if field in mapping:
        return mapping[field] in columns
    return any(column in columns for column in template.fields[field])


_QUESTION_MARKS = ("?", "？")  # ASCII and full-width (Chinese, Japanese)
_QUESTION_SHARE = 0.3  # of a column's values with a question mark: it holds questions
_CATEGORY_SHARE = 0.5  # at most this share of distinct values (4+ rows): a category column
# A field that asks (a prompt) when its name or a name it accepts is one of these.
_ASKING_NAMES = {"instruction", "question", "prompt", "query", "ask", "问题"}


@dataclass(frozen=True)
class _ColumnText:
    """What a column's values look like: mean length, share with a question mark, and
    whether they repeat like a category (department, label) rather than vary like text."""

    mean_chars: float
    question_share: float
    is_category: bool


def _column_text(rows: list[dict[str, Any]], column: str) -> _ColumnText:
    values = [str(row.get(column) or "").strip() for row in rows]
    filled = [v for v in values if v] or [""]
    asks = sum(any(mark in v for mark in _QUESTION_MARKS) for v in filled)
    repeats = len(filled) >= 4 and len(set(filled)) <= _CATEGORY_SHARE * len(filled)
    return _ColumnText(sum(map(len, filled)) / len(filled), asks / len(filled), repeats)


def _name_similarity(column: str, template: Template, field: str) -> float:
    names = [field, *template.fields[field]]
    return max(difflib.SequenceMatcher(None, column.lower(), n.lower()).ratio() for n in names)


def suggest_column(field: str, template: Template, columns: list[str], used: set[str],
                   rows: list[dict[str, Any]]) -> str | None:  # fmt: skip
    """The column most likely meant for ``field``: a near spelling of a name the template
    accepts, else (free-text fields) one chosen by what the columns hold; None when unsure.

    Example:
        >>> from ft_plugin.data.templates import load_template
        >>> rows = [{"ask": "头痛三天怎么办？", "said": "多休息，持续头痛请就诊。"},
        ...         {"ask": "血压高要吃药吗？", "said": "先复测血压，再按医嘱用药。"}]
        >>> suggest_column("output", load_template("medical"), ["ask", "said"], {"ask"}, rows)
        'said'
        >>> suggest_column("instruction", load_template("medical"), ["said"], set(), rows) is None
        True
    """
    free = [c for c in columns if c not in used]
    if not free:
        return None
    best = max(free, key=lambda c: _name_similarity(c, template, field))
    if _name_similarity(best, template, field) >= _NAME_SIMILARITY:
        return best
    if template.labels and field == template.labels.field:
        return None
    return _suggest_by_content(field, template, free, rows)


def _suggest_by_content(field: str, template: Template, free: list[str],
                        rows: list[dict[str, Any]]) -> str | None:  # fmt: skip
    """For a free-text field no column is named like: a column named like another field is
    left to it, and a category column to no text field. A field that asks takes the longest
    column of questions (a question's full text over its title); any other the longest
    column that is not questions, and for the assistant's turn one longer than every
    column of questions (answers usually are). None when the columns do not say."""
    others = [f for f in template.fields if f != field]
    candidates = [c for c in free if not any(
        _name_similarity(c, template, other) >= _NAME_SIMILARITY for other in others
    )]  # fmt: skip
    texts = {c: text for c in candidates if not (text := _column_text(rows, c)).is_category}
    chars = {c: text.mean_chars for c, text in texts.items()}
    questions = [c for c, text in texts.items() if text.question_share >= _QUESTION_SHARE]
    if _ASKING_NAMES & {field, *template.fields[field]}:
        return max(questions, key=chars.__getitem__, default=None)
    answers = _in_turn(template.assistant, field)
    floor = max((chars[c] for c in questions), default=0.0) if answers else 0.0
    statements = [c for c in texts if c not in questions and chars[c] > floor]
    return max(statements, key=chars.__getitem__, default=None)


def _in_turn(turn: str, field: str) -> bool:
    """Whether ``turn`` (a template's ``user`` or ``assistant``) has a ``{field}``."""
    return any(name == field for _, name, _, _ in string.Formatter().parse(turn))


def check_columns(template: Template, source: str, rows: list[dict[str, Any]],
                  mapping: dict[str, str], *, recipe_key: str | None = None) -> None:  # fmt: skip
    """Fail early, with what to type, when a required field has no column in ``rows``.

    ``recipe_key`` (e.g. ``datasets.0``) phrases the fix as a recipe key instead of a flag.
    Rows in chat form (a ``messages`` list) need no field columns.
    """
    if not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    present = set(columns)
    if template.accepts_messages and "messages" in present:
        return
    for field, column in mapping.items():
        if column not in present:
            raise DataError(
                f"{source}: column {column!r} (for field {field}) not found; the file's columns: "
                f"{', '.join(columns)}"
            )
    used = {c for f in template.fields if _fills(template, f, mapping, present)
            for c in ([mapping[f]] if f in mapping else template.fields[f]) if c in present}  # fmt: skip
    for field in template.required:
        if _fills(template, field, mapping, present):
            continue
        accepted = ", ".join(template.fields[field])
        message = (f"{source}: no column for the template's required field {field!r} (template "
                   f"{template.name} accepts: {accepted}); the file's columns: {', '.join(columns)}")  # fmt: skip
        guess = suggest_column(field, template, columns, used, rows)
        if guess is not None:
            message += f"; did you mean {_fix(template, field, guess, recipe_key)}?"
        raise DataError(message)


def _fix(template: Template, field: str, column: str, recipe_key: str | None) -> str:
    name = _recipe_name(template, field)
    if recipe_key is None:
        return f"--field {name}={column}"
    if name in RECIPE_FIELD_NAMES:
        return f"field_{name}: {column} in {recipe_key}"
    return f"renaming column {column} to {field}"


def recipe_field_keys(template: Template, mapping: dict[str, str]) -> dict[str, str]:
    """A mapping {template field: column} as a dataset's recipe keys (``field_*``), which
    `formats.template_mapping` reads back into the same mapping.

    Example:
        >>> from .templates import load_template
        >>> recipe_field_keys(load_template("medical-pubmedqa"), {"question": "Q", "answer": "A"})
        {'field_instruction': 'Q', 'field_output': 'A'}
    """
    keys = {}
    for field, column in mapping.items():
        name = _recipe_name(template, field)
        if name not in RECIPE_FIELD_NAMES:
            raise UserError(
                f"field {field!r} of template {template.name} has no recipe key; rename the "
                f"column {column!r} to {field!r} in the file instead"
            )
        keys[f"field_{name}"] = column
    return keys


def dataset_field_keys(dataset_type: str, pairs: Iterable[str] | None) -> dict[str, str]:
    """``--field NAME=COLUMN`` arguments as a `datasets` entry's ``field_*`` keys, for a
    domain template or a built-in row type.

    Example:
        >>> dataset_field_keys("medical-pubmedqa", ["question=Q"])
        {'field_instruction': 'Q'}
        >>> dataset_field_keys("alpaca", ["instruction=ask"])
        {'field_instruction': 'ask'}
    """
    if dataset_type in CONVERTERS:
        return {
            f"field_{name}": column for name, column in parse_plain_field_arguments(pairs).items()
        }
    template = load_template(dataset_type)
    return recipe_field_keys(template, parse_field_arguments(pairs, template))


def _recipe_name(template: Template, field: str) -> str:
    """The recipe/flag name for ``field``: its field_* name where one exists."""
    if field in RECIPE_FIELD_NAMES:
        return field
    for name in RECIPE_FIELD_NAMES:
        if name in template.fields[field]:
            return name
    return field
