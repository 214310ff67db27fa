"""Data augmentation: template filling and synonym replacement (back-translation:
``back_translation.py``).

Every function returns *new* rows only (the caller keeps its originals, which are never
mutated) and marks each of them with ``"_augmented": "<kind>"`` (``template``,
``synonym`` or ``back_translation``), so that augmented rows can be counted
(:meth:`AugmentReport.from_rows`) or filtered out of an evaluation split later.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ft_plugin.utils.text import CJK_CLASS, has_cjk

Row = dict[str, Any]

__all__ = ["AUGMENTED", "AugmentReport", "fill_slots", "synonym_replace"]

AUGMENTED = "_augmented"

# CJK (ft_plugin.utils.text): scripts written without spaces between words (Korean has spaces,
# but substring matching is still right for its agglutinated particles).
# What counts as "inside a word" for whole-word matching of Latin terms. CJK characters
# are deliberately not word characters here, so "患有hypertension的" still matches.
_WORD_CHAR = r"[^\W" + CJK_CLASS + r"]"


# --------------------------------------------------------------------------- report


@dataclass
class AugmentReport:
    """How many rows of each augmentation kind a dataset holds.

    Example:
        >>> AugmentReport.from_rows([{"q": "a"}, {"q": "b", "_augmented": "synonym"}]).to_dict()
        {'original': 1, 'augmented': {'synonym': 1}, 'total': 2}
    """

    original: int = 0
    augmented: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.original + sum(self.augmented.values())

    @classmethod
    def from_rows(cls, rows: Sequence[Row]) -> AugmentReport:
        """Count rows by their ``_augmented`` mark (unmarked rows are originals)."""
        kinds = Counter(str(row[AUGMENTED]) for row in rows if row.get(AUGMENTED))
        original = sum(1 for row in rows if not row.get(AUGMENTED))
        return cls(original, {kind: kinds[kind] for kind in sorted(kinds)})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the report."""
        return {**asdict(self), "total": self.total}


# --------------------------------------------------------------------------- templates


def _parse_template(text: str, where: str) -> list[tuple[str, str | None]]:
    """``"a {x} {{b}}"`` → ``[("a ", "x"), (" {b}", None)]``; rejects ``{x.y}``/``{x!r}``/``{}``."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as error:
        raise ValueError(f"{where}: malformed template {text!r}: {error}") from None
    parsed: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parts:
        if name is not None and (not name.isidentifier() or spec or conversion or not name.strip()):
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise ValueError(
                f"{where}: placeholder {shown} is not a plain slot name "
                "(use {{ and }} for literal braces)"
            )
        parsed.append((literal, name))
    return parsed


def _render(parsed: list[tuple[str, str | None]], values: dict[str, str]) -> str:
    return "".join(literal + (values[name] if name is not None else "") for literal, name in parsed)


def fill_slots(
    patterns: list[dict[str, str]],
    slots: dict[str, list[str]],
    *,
    limit: int | None = None,
    seed: int = 0,
) -> list[Row]:
    """Rows from every combination of slot values in every pattern.

    A pattern is a row whose string values may contain ``{slot}`` placeholders (``{{`` and
    ``}}`` are literal braces). One combination gives each slot of the pattern a single
    value, used in all of the row's fields. Order: patterns in order, then combinations
    in ``itertools.product`` order of the pattern's slots (by first appearance). With
    ``limit`` and more combinations than that, a seeded random ``limit`` of them is kept
    (still in that order). Non-string values are copied as they are.

    Example:
        >>> rows = fill_slots(
        ...     [{"instruction": "Dose of {drug}?", "output": "{drug}: see label {{1}}"}],
        ...     {"drug": ["aspirin", "ibuprofen"]},
        ... )
        >>> [row["output"] for row in rows]
        ['aspirin: see label {1}', 'ibuprofen: see label {1}']
        >>> rows[0]["_augmented"]
        'template'
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    compiled: list[tuple[Row, dict[str, list[tuple[str, str | None]]], list[str]]] = []
    sizes: list[int] = []
    for index, pattern in enumerate(patterns):
        parsed: dict[str, list[tuple[str, str | None]]] = {}
        names: list[str] = []
        for key, value in pattern.items():
            if not isinstance(value, str):
                continue
            parsed[key] = _parse_template(value, f"pattern {index}, field {key!r}")
            for _, name in parsed[key]:
                if name is not None and name not in names:
                    names.append(name)
        for name in names:
            if name not in slots:
                known = ", ".join(sorted(slots)) or "none"
                raise ValueError(f"pattern {index}: unknown slot {name!r} (known slots: {known})")
            if not slots[name]:
                raise ValueError(f"pattern {index}: slot {name!r} has no values")
        compiled.append((pattern, parsed, names))
        sizes.append(math.prod(len(slots[name]) for name in names))

    total = sum(sizes)
    if limit is None or total <= limit:
        chosen: Sequence[int] = range(total)
    else:
        chosen = sorted(random.Random(seed).sample(range(total), limit))

    starts = list(itertools.accumulate(sizes, initial=0))
    out: list[Row] = []
    which = 0
    for flat in chosen:
        while flat >= starts[which + 1]:
            which += 1
        pattern, parsed, names = compiled[which]
        # mixed-radix decoding of the combination number, last slot varying fastest
        rest = flat - starts[which]
        values: dict[str, str] = {}
        for name in reversed(names):
            rest, pick = divmod(rest, len(slots[name]))
            values[name] = str(slots[name][pick])
        row = dict(pattern)
        for key, parts in parsed.items():
            row[key] = _render(parts, values)
        row[AUGMENTED] = "template"
        out.append(row)
    return out


# --------------------------------------------------------------------------- synonyms


def _term_regex(term: str) -> re.Pattern[str]:
    words = term.split()
    body = r"\s+".join(re.escape(word) for word in words)
    if has_cjk(term):
        return re.compile(body, re.IGNORECASE)
    return re.compile(rf"(?<!{_WORD_CHAR}){body}(?!{_WORD_CHAR})", re.IGNORECASE)


def _match_case(matched: str, replacement: str) -> str:
    """Carry the matched text's casing over: ``HTN``→upper, ``Htn``→first letter upper."""
    letters = [char for char in matched if char.isalpha()]
    if not letters or has_cjk(matched):
        return replacement
    if len(letters) > 1 and all(char.isupper() for char in letters):
        return replacement.upper()
    if letters[0].isupper() and matched[0].isalpha():
        return replacement[:1].upper() + replacement[1:]
    return replacement


@dataclass(frozen=True)
class _Match:
    start: int
    end: int
    key: str


def _find_terms(text: str, table: dict[str, tuple[re.Pattern[str], list[str]]]) -> list[_Match]:
    """Non-overlapping term occurrences; where occurrences overlap the longest wins."""
    found = [
        _Match(hit.start(), hit.end(), key)
        for key, (regex, _) in table.items()
        for hit in regex.finditer(text)
        if hit.end() > hit.start()
    ]
    found.sort(key=lambda match: (-(match.end - match.start), match.start, match.key))
    taken: list[_Match] = []
    for match in found:
        if all(match.end <= other.start or match.start >= other.end for other in taken):
            taken.append(match)
    return sorted(taken, key=lambda match: match.start)


def _synonym_table(
    synonyms: dict[str, list[str]],
) -> dict[str, tuple[re.Pattern[str], list[str]]]:
    merged: dict[str, list[str]] = {}
    for term, alternatives in synonyms.items():
        key = " ".join(term.split()).lower()
        if not key:
            continue
        bucket = merged.setdefault(key, [])
        for alternative in alternatives:
            if (
                alternative.strip()
                and " ".join(alternative.split()).lower() != key
                and alternative not in bucket
            ):
                bucket.append(alternative)
    return {key: (_term_regex(key), alts) for key, alts in sorted(merged.items()) if alts}


def synonym_replace(
    rows: list[Row],
    synonyms: dict[str, list[str]],
    *,
    fields: list[str],
    per_row: int = 1,
    probability: float = 1.0,
    seed: int = 0,
) -> list[Row]:
    """Variants of rows with synonym-table terms swapped for one of their synonyms.

    Latin terms match whole words, case-insensitively, and the replacement takes the
    matched casing (``Hypertension`` → ``High blood pressure``); terms containing CJK
    characters match as plain substrings (Chinese has no word boundaries). Multi-word
    terms match across any whitespace; where matches overlap the longest term wins. Each
    occurrence is replaced with ``probability``. Up to ``per_row`` *distinct* variants per
    row; a row whose ``fields`` hold no term (or whose every draw left it unchanged) gives
    none. Seeded per row, so a row's variants don't depend on the other rows.

    Example:
        >>> rows = [{"instruction": "Treat Hypertension in adults", "output": "..."}]
        >>> table = {"hypertension": ["high blood pressure"]}
        >>> out = synonym_replace(rows, table, fields=["instruction"])
        >>> out[0]["instruction"], out[0]["_augmented"]
        ('Treat High blood pressure in adults', 'synonym')
        >>> synonym_replace(rows, {"hypertensive": ["x"]}, fields=["instruction"])
        []
    """
    if per_row < 0:
        raise ValueError(f"per_row must be >= 0, not {per_row}")
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], not {probability}")
    table = _synonym_table(synonyms)
    out: list[Row] = []
    if not table or per_row == 0 or probability == 0.0:
        return out
    for index, row in enumerate(rows):
        matches = {
            key: _find_terms(row[key], table) for key in fields if isinstance(row.get(key), str)
        }
        matches = {key: found for key, found in matches.items() if found}
        if not matches:
            continue
        rng = random.Random(f"{seed}:{index}")
        seen: set[tuple[str, ...]] = set()
        # a few extra draws so that per_row distinct variants are found when they exist
        for _ in range(per_row * 4):
            variant = dict(row)
            for key, found in matches.items():
                text, pieces, cursor = row[key], [], 0
                for match in found:
                    if probability < 1.0 and rng.random() >= probability:
                        continue
                    choice = rng.choice(table[match.key][1])
                    matched = text[match.start : match.end]
                    pieces += [text[cursor : match.start], _match_case(matched, choice)]
                    cursor = match.end
                variant[key] = "".join(pieces) + text[cursor:]
            signature = tuple(variant[key] for key in matches)
            if signature in seen or all(variant[key] == row[key] for key in matches):
                continue
            seen.add(signature)
            variant[AUGMENTED] = "synonym"
            out.append(variant)
            if len(seen) == per_row:
                break
    return out
