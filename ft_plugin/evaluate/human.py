"""Blind human evaluation: rating sheets for raters, and the report from the filled sheets.

:func:`write_human_sheet` writes one CSV row per prompt with the base and the tuned
model's answers as ``answer_a`` and ``answer_b``, in an order drawn per row from
``seed``. Which is which goes to a separate key file, ``<stem>.key.csv`` (columns
``id, a, b``, values ``base``/``tuned``), that raters never see. Raters fill
``relevance_*``, ``accuracy_*`` and ``readability_*`` with integers 1-5, ``preference``
with ``a``, ``b`` or ``tie``, and optionally ``rater`` and ``comment``.

:func:`import_ratings` reads the filled copies (one per rater), unblinds them with the
key, and reports, per model and criterion, the mean score (1-5 scale) with a 95%
t-interval, the preference shares (0-1), and the inter-rater agreement as
Krippendorff's alpha (-1..1, 1 = perfect; :func:`krippendorff_alpha`, computed by the
``krippendorff`` package from value counts per unit, so units may have any number of raters).
Text metrics elsewhere use 0-100 (bleu, chrf, rouge*) and classification 0-1.

Files are UTF-8 without a BOM (a BOM written back by a spreadsheet is accepted on
reading), and are written atomically (temporary file, then rename).

Prompts and answers are model output and user data, and a spreadsheet runs a cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula (CSV
injection, OWASP). Such a cell is written with a leading ``'`` (:func:`escape_cell`), which
spreadsheets read as "text"; so is a cell that starts with ``'`` itself, which keeps the
escaping reversible: every reader here (:func:`read_human_sheet`, :func:`import_ratings`)
undoes exactly that (:func:`unescape_cell`), and an answer reads back as it was written.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .human_stats import (
    CRITERIA,
    LEVELS,
    MODELS,
    HumanReport,
    ScoreStats,
    krippendorff_alpha,
    summarise,
)

__all__ = [
    "CRITERIA",
    "SHEET_COLUMNS",
    "HumanReport",
    "ScoreStats",
    "import_ratings",
    "escape_cell",
    "key_path_for",
    "krippendorff_alpha",
    "read_human_sheet",
    "unblinded_rows",
    "unescape_cell",
    "write_human_sheet",
]

SCORE_COLUMNS = [f"{c}_{slot}" for slot in ("a", "b") for c in CRITERIA]
SHEET_COLUMNS = [
    "id",
    "prompt",
    "answer_a",
    "answer_b",
    *SCORE_COLUMNS,
    "preference",
    "rater",
    "comment",
]
KEY_COLUMNS = ["id", "a", "b"]
_SCORE_RE = re.compile(r"([1-5])(?:\.0*)?")
_PREFERENCES = ("a", "b", "tie")
# First characters that make a spreadsheet cell a formula (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
TEXT_PREFIX = "'"  # what spreadsheets read as "the rest is text"


def escape_cell(value: Any) -> str:
    """``value`` as a sheet cell that no spreadsheet runs: a ``'`` before a formula
    character, and before a leading ``'`` (so that :func:`unescape_cell` can undo it).

    Example:
        >>> escape_cell("=1+1"), escape_cell("- item"), escape_cell("@SUM(A1)"), escape_cell("ok")
        ("'=1+1", "'- item", "'@SUM(A1)", 'ok')
        >>> escape_cell("'quoted"), escape_cell(3)
        ("''quoted", '3')
    """
    text = "" if value is None else str(value)
    return TEXT_PREFIX + text if text.startswith((*FORMULA_TRIGGERS, TEXT_PREFIX)) else text


def unescape_cell(text: str) -> str:
    """The value :func:`escape_cell` was given (a cell a person typed stays as it is).

    Example:
        >>> unescape_cell("'- item"), unescape_cell("''quoted"), unescape_cell("'its")
        ('- item', "'quoted", "'its")
    """
    escaped = text.startswith(TEXT_PREFIX) and text[1:].startswith((*FORMULA_TRIGGERS, TEXT_PREFIX))
    return text[1:] if escaped else text


def key_path_for(sheet: str | Path) -> Path:
    """Where the unblinding key of ``sheet`` lives: ``<stem>.key.csv`` next to it.

    Example:
        >>> key_path_for("eval/ratings.csv").as_posix()
        'eval/ratings.key.csv'
    """
    sheet = Path(sheet)
    return sheet.with_name(f"{sheet.stem}.key.csv")


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    """Write a UTF-8 CSV atomically (a temporary file in the same folder, then rename),
    every cell escaped (:func:`escape_cell`)."""
    from ft_plugin.utils.io import atomic_writer

    with atomic_writer(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow([escape_cell(h) for h in header])
        writer.writerows([escape_cell(cell) for cell in row] for row in rows)


def write_human_sheet(items: list[dict[str, Any]], path: str | Path, *, seed: int = 0) -> Path:
    """Write a blind rating sheet to ``path`` and its key to ``<stem>.key.csv``.

    Each item needs ``prompt``, ``base_answer`` and ``tuned_answer``; its ``id`` is
    ``item["id"]`` when given, else its 1-based position. Which answer is ``a`` is drawn
    per row from ``random.Random(seed)``, so the same items and seed give the same sheet.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        items = [{"prompt": "2+2?", "base_answer": "5", "tuned_answer": "4"}]
        write_human_sheet(items, tmp / "ratings.csv", seed=1).name  # 'ratings.csv'
    """
    if not items:
        raise ValueError("no items to write to the human evaluation sheet")
    path, rng = Path(path), random.Random(seed)
    sheet, key, seen = [], [], set()
    for i, item in enumerate(items):
        missing = [k for k in ("prompt", "base_answer", "tuned_answer") if k not in item]
        if missing:
            raise ValueError(f"item {i + 1}: missing {', '.join(missing)}")
        item_id = str(item.get("id", i + 1))
        if item_id in seen:
            raise ValueError(f"item {i + 1}: duplicate id {item_id!r}")
        seen.add(item_id)
        a, b = ("tuned", "base") if rng.random() < 0.5 else ("base", "tuned")
        answers = {"base": item["base_answer"], "tuned": item["tuned_answer"]}
        sheet.append([item_id, item["prompt"], answers[a], answers[b]] + [""] * 9)
        key.append([item_id, a, b])
    _write_csv(key_path_for(path), KEY_COLUMNS, key)
    _write_csv(path, SHEET_COLUMNS, sheet)
    return path


def _read_key(path: Path) -> dict[str, dict[str, str]]:
    """``{id: {"a": model, "b": model}}`` from a key file, checked."""
    key = {}
    for where, row in _read_rows(path, KEY_COLUMNS):
        if sorted((row["a"], row["b"])) != list(MODELS):
            raise ValueError(
                f"{where}: a, b: expected base and tuned, got {row['a']!r}, {row['b']!r}"
            )
        key[row["id"]] = {"a": row["a"], "b": row["b"]}
    return key


def _read_rows(
    path: Path, required: list[str], *, strip: bool = True
) -> list[tuple[str, dict[str, str]]]:
    """Non-blank rows of a CSV as ``("file.csv:ROW", {column: cell})``, each cell unescaped
    (:func:`unescape_cell`), then stripped of surrounding blanks when ``strip``.

    ROW is the spreadsheet row number (header = 1), which stays right when a cell
    holds several lines of text.
    """
    reader = _sheet_cells(path)
    header = [unescape_cell(h).strip() for h in next(reader, [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path.name}: missing columns: {', '.join(missing)}")
    rows = []
    for number, cells in enumerate(reader, start=2):
        if any(c.strip() for c in cells):
            values = [unescape_cell(c) for c in cells]
            values = [v.strip() for v in values] if strip else values
            row = {h: (values[i] if i < len(values) else "") for i, h in enumerate(header)}
            rows.append((f"{path.name}:{number}", row))
    return rows


def _sheet_cells(path: Path) -> Iterator[list[str]]:
    """Each row's cells as text: a CSV as written, or the first sheet of an ``.xlsx`` a
    rater saved from a spreadsheet (openpyxl; a typed 4 reads as "4")."""
    if path.suffix.lower() != ".xlsx":
        with path.open(encoding="utf-8-sig", newline="") as f:
            yield from csv.reader(f)
        return
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        for values in book.worksheets[0].iter_rows(values_only=True):
            yield [_cell_text(v) for v in values]
    finally:
        book.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_human_sheet(path: str | Path) -> list[dict[str, str]]:
    """The rows of a rating sheet (filled or not) by column, every cell exactly as
    :func:`write_human_sheet` (or the rater) wrote it: the escaping undone, no blanks
    stripped, so a prompt or an answer reads back identical.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        write_human_sheet([{"prompt": "=2+2?", "base_answer": "- 5", "tuned_answer": "4"}], p)
        read_human_sheet(p)[0]["prompt"]  # '=2+2?'
    """
    path = Path(path)
    return [row for _, row in _read_rows(path, SHEET_COLUMNS[:4], strip=False)]


def _default_key(sheet: Path) -> Path:
    """``<stem>.key.csv`` next to ``sheet``, else the only ``*.key.csv`` in its folder."""
    own = key_path_for(sheet)
    if own.exists():
        return own
    others = sorted(sheet.parent.glob("*.key.csv"))
    if len(others) == 1:
        return others[0]
    raise ValueError(f"no key file {own.name} next to {sheet.name}: pass key_path")


def _parse_row(where: str, row: dict[str, str], order: dict[str, str]) -> dict[str, Any]:
    """The filled cells of one sheet row, unblinded: ``{(model, criterion): score,
    "preference": "base" | "tuned" | "tie"}``; a bad cell raises ValueError."""
    out: dict[Any, Any] = {}
    for column in SCORE_COLUMNS:
        cell = row[column]
        if not cell:
            continue
        match = _SCORE_RE.fullmatch(cell)
        if not match:
            raise ValueError(f"{where}: {column}: expected 1-5, got {cell!r}")
        criterion, slot = column.rsplit("_", 1)
        out[(order[slot], criterion)] = int(match.group(1))
    preference = row["preference"].lower()
    if preference and preference not in _PREFERENCES:
        raise ValueError(f"{where}: preference: expected a, b or tie, got {row['preference']!r}")
    if preference:
        out["preference"] = order.get(preference, "tie")
    return out


def import_ratings(
    paths: Sequence[str | Path],
    key_path: str | Path | None = None,
    *,
    agreement_level: str = "ordinal",
) -> HumanReport:
    """Read filled rating sheets, unblind them with the key and summarise them.

    A row's rater is its ``rater`` cell, else the first ``rater`` filled in its file,
    else the file's stem (``ratings_bob.csv`` -> ``ratings_bob``). The key defaults to
    :func:`key_path_for` of the first sheet, else the only ``*.key.csv`` in its folder.
    Empty cells are skipped; a rater may rate an item only once.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        sheets = ["eval/ratings_ann.csv", "eval/ratings_bob.csv"]
        report = import_ratings(sheets)
        report.scores["tuned"]["accuracy"].mean, report.preference["tuned"]

    Raises:
        ValueError: ``file.csv:ROW: column: what is wrong`` for a bad cell, an id not in
            the key or an item rated twice by one rater; missing columns or key.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no rating sheets given")
    if agreement_level not in LEVELS:
        raise ValueError(f"unknown agreement_level {agreement_level!r}: use one of {LEVELS}")
    key = _read_key(Path(key_path) if key_path else _default_key(paths[0]))
    # ratings[(criterion, model)][(item, rater)] = score
    ratings: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    preferences, seen = [], {}
    for path in paths:
        rows = _read_rows(path, ["id", *SCORE_COLUMNS, "preference"])
        file_rater = next((r["rater"] for _, r in rows if r.get("rater")), path.stem)
        for where, row in rows:
            rater, item = row.get("rater") or file_rater, row["id"]
            if item not in key:
                raise ValueError(f"{where}: id: {item!r} is not in the key")
            cells = _parse_row(where, row, key[item])
            if not cells:
                continue
            if (rater, item) in seen:
                raise ValueError(
                    f"{where}: {rater} already rated item {item!r} ({seen[rater, item]})"
                )
            seen[rater, item] = where
            if "preference" in cells:
                preferences.append(cells.pop("preference"))
            for (model, criterion), score in cells.items():
                ratings.setdefault((criterion, model), {})[item, rater] = score
    return summarise(ratings, preferences, seen, agreement_level)


def unblinded_rows(
    paths: Sequence[str | Path], key_path: str | Path | None = None
) -> list[dict[str, Any]]:
    """Each filled row of the sheets, unblinded with the key: ``{"prompt", "answers":
    {model: text}, "scores": {model: {criterion: score}}, "rater"}`` (texts exactly as
    written; a row with no score at all is left out).

    Example (usage, not run as a doctest: it needs filled sheets)::

        unblinded_rows(["eval/ratings_ann.csv"])[0]["scores"]["tuned"]["accuracy"]
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no rating sheets given")
    key = _read_key(Path(key_path) if key_path else _default_key(paths[0]))
    out = []
    for path in paths:
        for where, row in _read_rows(path, SHEET_COLUMNS[:4] + SCORE_COLUMNS, strip=False):
            order = key.get(row["id"].strip())
            if order is None:
                raise ValueError(f"{where}: id: {row['id']!r} is not in the key")
            cells = _parse_row(where, {k: v.strip() for k, v in row.items()}, order)
            scores: dict[str, dict[str, int]] = {model: {} for model in MODELS}
            for (model, criterion), score in (
                (k, v) for k, v in cells.items() if k != "preference"
            ):
                scores[model][criterion] = score
            if any(scores.values()):
                answers = {order[slot]: row[f"answer_{slot}"] for slot in ("a", "b")}
                out.append({"prompt": row["prompt"], "answers": answers, "scores": scores,
                            "rater": row.get("rater", "").strip() or path.stem})  # fmt: skip
    return out
