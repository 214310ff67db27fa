"""Human evaluation sheets: blind writing, unblinding, statistics and agreement."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest
from scipy import stats

from ft_plugin.evaluate.human import (
    SHEET_COLUMNS,
    import_ratings,
    key_path_for,
    krippendorff_alpha,
    write_human_sheet,
)

ITEMS = [
    {
        "prompt": f"问题 {i}: 今年的GDP增长是多少？",
        "base_answer": f"基础回答 {i}",
        "tuned_answer": f"微调回答 {i}",
    }
    for i in range(20)
]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _fill(sheet: Path, out: Path, scores: dict[str, dict[str, list[int]]], **extra: str) -> Path:
    """A rater's copy of ``sheet``: ``scores[model][criterion][row]``, placed by the key."""
    key = {row["id"]: row for row in _read(key_path_for(sheet))}
    rows = _read(sheet)
    for i, row in enumerate(rows):
        for slot in ("a", "b"):
            model = key[row["id"]][slot]
            for criterion, values in scores.get(model, {}).items():
                if i < len(values) and values[i] is not None:
                    row[f"{criterion}_{slot}"] = str(values[i])
        for column, value in extra.items():
            row[column] = value.split(",")[i] if "," in value else value
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SHEET_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return out


def _t_interval(values: list[int]) -> tuple[float, float]:
    return stats.t.interval(
        0.95, len(values) - 1, loc=statistics.mean(values), scale=stats.sem(values)
    )


@pytest.fixture
def sheet(tmp_path: Path) -> Path:
    return write_human_sheet(ITEMS[:3], tmp_path / "ratings.csv", seed=7)


def test_sheet_blind_key_separate_and_chinese_round_trips(tmp_path):
    path = write_human_sheet(ITEMS, tmp_path / "ratings.csv", seed=3)
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert b"tuned" not in raw and b"base" not in raw
    rows = _read(path)
    assert list(rows[0]) == SHEET_COLUMNS
    assert [r["prompt"] for r in rows] == [item["prompt"] for item in ITEMS]
    assert all(r[c] == "" for r in rows for c in SHEET_COLUMNS[4:])
    key = _read(tmp_path / "ratings.key.csv")
    assert list(key[0]) == ["id", "a", "b"]
    for item, row, k in zip(ITEMS, rows, key, strict=True):
        assert row["id"] == k["id"]
        assert {k["a"], k["b"]} == {"base", "tuned"}
        assert row["answer_a"] == item[f"{k['a']}_answer"]  # unblinding recovers the model
        assert row["answer_b"] == item[f"{k['b']}_answer"]
    assert {k["a"] for k in key} == {"base", "tuned"}  # randomised per row
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.csv", "ratings.key.csv"]


def test_sheet_is_deterministic_per_seed(tmp_path):
    one = write_human_sheet(ITEMS, tmp_path / "one.csv", seed=5)
    two = write_human_sheet(ITEMS, tmp_path / "two.csv", seed=5)
    other = write_human_sheet(ITEMS, tmp_path / "other.csv", seed=6)
    assert one.read_bytes() == two.read_bytes()
    assert key_path_for(one).read_bytes() == key_path_for(two).read_bytes()
    assert key_path_for(one).read_bytes() != key_path_for(other).read_bytes()


def test_sheet_uses_item_ids_and_rejects_bad_items(tmp_path):
    path = write_human_sheet([{**ITEMS[0], "id": "q-7"}], tmp_path / "s.csv")
    assert _read(path)[0]["id"] == "q-7"
    with pytest.raises(ValueError, match="item 1: missing tuned_answer"):
        write_human_sheet([{"prompt": "p", "base_answer": "b"}], tmp_path / "x.csv")
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        write_human_sheet([{**ITEMS[0], "id": "a"}, {**ITEMS[1], "id": "a"}], tmp_path / "x.csv")
    with pytest.raises(ValueError, match="no items"):
        write_human_sheet([], tmp_path / "x.csv")


def test_means_and_cis_match_scipy(sheet, tmp_path):
    ann = {"tuned": {"accuracy": [5, 4, 4], "relevance": [5]}, "base": {"accuracy": [2, 3, 3]}}
    bob = {"tuned": {"accuracy": [4, 4, 5]}, "base": {"accuracy": [3, 3, 1]}}
    report = import_ratings(
        [
            _fill(sheet, tmp_path / "ratings_ann.csv", ann),
            _fill(sheet, tmp_path / "ratings_bob.csv", bob),
        ]
    )
    for model, values in [("tuned", [5, 4, 4, 4, 4, 5]), ("base", [2, 3, 3, 3, 3, 1])]:
        s = report.scores[model]["accuracy"]
        assert s.n == 6
        assert s.mean == pytest.approx(sum(values) / 6)
        assert s.ci95 == pytest.approx(_t_interval(values))
    relevance = report.scores["tuned"]["relevance"]
    assert (relevance.mean, relevance.ci95, relevance.n) == (5.0, (5.0, 5.0), 1)
    readability = report.scores["base"]["readability"]
    assert (readability.mean, readability.ci95, readability.n) == (None, None, 0)
    assert report.raters == 2 and report.rater_names == ["ratings_ann", "ratings_bob"]
    assert report.items == 3
    flat = report.to_dict()
    assert flat["tuned_accuracy_mean"] == pytest.approx(13 / 3)
    assert flat["tuned_relevance_ci95_low"] == 5.0 and flat["base_readability_mean"] is None


def test_preference_shares_are_unblinded(sheet, tmp_path):
    key = _read(key_path_for(sheet))
    # Row 0: the tuned answer's slot; row 1: the base answer's slot; row 2: a tie.
    prefs = [
        next(s for s in "ab" if key[0][s] == "tuned"),
        next(s for s in "ab" if key[1][s] == "base"),
        "Tie",
    ]
    report = import_ratings([_fill(sheet, tmp_path / "c.csv", {}, preference=",".join(prefs))])
    assert report.preference == pytest.approx({"tuned": 1 / 3, "base": 1 / 3, "tie": 1 / 3})
    assert report.preference_n == 3 and report.raters == 1


def test_rater_column_names_the_rater_and_empty_cells_are_skipped(sheet, tmp_path):
    partial = {"tuned": {"readability": [4, None, None]}}
    one = _fill(sheet, tmp_path / "copy1.csv", partial, rater="Alice,,")
    two = _fill(sheet, tmp_path / "copy2.csv", {"tuned": {"readability": [None, 2]}}, rater="Alice")
    report = import_ratings([one, two], key_path_for(sheet))
    assert report.rater_names == ["Alice"]
    assert report.scores["tuned"]["readability"].n == 2
    assert report.preference_n == 0 and report.preference == {"tuned": 0.0, "base": 0.0, "tie": 0.0}
    assert report.agreement == {}  # one rater: no agreement to report


def test_agreement_is_one_for_identical_ratings(sheet, tmp_path):
    same = {"tuned": {c: [5, 4, 3] for c in ("relevance", "accuracy", "readability")}}
    same["base"] = {c: [2, 1, 3] for c in ("relevance", "accuracy", "readability")}
    paths = [_fill(sheet, tmp_path / f"r{i}.csv", same) for i in range(2)]
    report = import_ratings(paths)
    assert report.agreement == {"relevance": 1.0, "accuracy": 1.0, "readability": 1.0}
    assert report.to_dict()["alpha_accuracy"] == 1.0


def test_agreement_matches_reference_computation(sheet, tmp_path):
    ann = {"tuned": {"accuracy": [5, 4, 4]}, "base": {"accuracy": [2, 3, 3]}}
    bob = {"tuned": {"accuracy": [4, 4, 5]}, "base": {"accuracy": [3, 3, 1]}}
    paths = [_fill(sheet, tmp_path / "ann.csv", ann), _fill(sheet, tmp_path / "bob.csv", bob)]
    units = [[5, 4], [4, 4], [4, 5], [2, 3], [3, 3], [3, 1]]  # (item, model) -> both raters
    assert import_ratings(paths).agreement == {"accuracy": pytest.approx(krippendorff_alpha(units))}
    interval = import_ratings(paths, agreement_level="interval").agreement["accuracy"]
    assert interval == pytest.approx(krippendorff_alpha(units, "interval"))
    # By hand, interval level: n = 12 values; observed disagreement sum over coincidences
    # 2 * (1 + 1 + 1 + 4) = 14; expected: sum over all value pairs of (c - k)^2.
    values = [v for unit in units for v in unit]
    expected = sum((a - b) ** 2 for a in values for b in values)
    assert interval == pytest.approx(1 - (len(values) - 1) * 14 / expected)


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
# four observers, twelve units, None = missing.
TEXTBOOK = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


@pytest.mark.parametrize(
    ("level", "alpha"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_alpha_textbook_values(level, alpha):
    units = [list(unit) for unit in zip(*TEXTBOOK, strict=True)]
    assert krippendorff_alpha(units, level) == pytest.approx(alpha, abs=5e-4)


def test_krippendorff_alpha_undefined_cases():
    assert krippendorff_alpha([[3, 3], [3, 3]]) is None  # no variation
    assert krippendorff_alpha([[1], [2, None]]) is None  # nothing pairable
    assert krippendorff_alpha([[1, 5], [5, 1]], "nominal") < 0
    with pytest.raises(ValueError, match="unknown level"):
        krippendorff_alpha([[1, 2]], "cosine")


def test_bad_cell_error_names_file_row_and_column(sheet, tmp_path):
    path = _fill(sheet, tmp_path / "ratings_bob.csv", {"tuned": {"accuracy": [4, 4, 4]}})
    rows = _read(path)
    rows[2]["accuracy_a"] = "great"  # third data row = spreadsheet row 4
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SHEET_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError) as error:
        import_ratings([path], key_path_for(sheet))
    assert str(error.value) == "ratings_bob.csv:4: accuracy_a: expected 1-5, got 'great'"


def test_row_numbers_count_spreadsheet_rows_with_multiline_cells(tmp_path):
    items = [{"prompt": "p\nwith\nlines", "base_answer": "x\ny", "tuned_answer": "z"}] * 2
    sheet = write_human_sheet(
        [{**item, "id": i} for i, item in enumerate(items)], tmp_path / "s.csv"
    )
    path = _fill(sheet, tmp_path / "s_ann.csv", {}, preference="a,maybe")
    with pytest.raises(ValueError) as error:
        import_ratings([path])
    assert str(error.value) == "s_ann.csv:3: preference: expected a, b or tie, got 'maybe'"


@pytest.mark.parametrize(
    ("cell", "ok"), [("6", False), ("0", False), ("4.5", False), ("4.0", True), (" 3 ", True)]
)
def test_score_cells_must_be_integers_1_to_5(sheet, tmp_path, cell, ok):
    rows = _read(sheet)
    rows[0]["relevance_b"] = cell
    path = tmp_path / "ratings_x.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:  # a BOM, as spreadsheets write
        writer = csv.DictWriter(f, fieldnames=SHEET_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    if ok:
        assert import_ratings([path], key_path_for(sheet)).raters == 1
    else:
        with pytest.raises(
            ValueError, match=rf"ratings_x.csv:2: relevance_b: expected 1-5, got '{cell}'"
        ):
            import_ratings([path], key_path_for(sheet))


def test_import_errors(sheet, tmp_path):
    ann = _fill(sheet, tmp_path / "ann.csv", {"tuned": {"accuracy": [4, 4, 4]}})
    with pytest.raises(ValueError, match="ann already rated item"):
        import_ratings([ann, ann])
    with pytest.raises(ValueError, match="no rating sheets"):
        import_ratings([])
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(SHEET_COLUMNS[:10]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.csv: missing columns: preference"):
        import_ratings([bad], key_path_for(sheet))
    other = write_human_sheet([{**ITEMS[0], "id": "zzz"}], tmp_path / "other" / "o.csv")
    with pytest.raises(ValueError, match=r"ann.csv:2: id: '1' is not in the key"):
        import_ratings([ann], key_path_for(other))
    lonely = tmp_path / "elsewhere" / "copy.csv"
    lonely.parent.mkdir()
    lonely.write_bytes(ann.read_bytes())
    with pytest.raises(ValueError, match="no key file copy.key.csv next to copy.csv"):
        import_ratings([lonely])
    assert import_ratings([lonely], key_path_for(sheet)).scores["tuned"]["accuracy"].mean == 4.0
