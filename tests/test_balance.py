"""Class balancing: exact counts for every strategy and ratio, seeds, no mutation."""

from __future__ import annotations

import copy
import json

import pytest

from ft_plugin.data.balance import BalanceReport, balance_rows, label_distribution


def _rows() -> list[dict]:
    """10 x "pos", 4 x "neg", 2 x "neu", interleaved, each row unique."""
    labels = ["pos"] * 10 + ["neg"] * 4 + ["neu"] * 2
    order = [0, 10, 1, 14, 2, 11, 3, 4, 12, 5, 15, 6, 13, 7, 8, 9]
    return [{"text": f"text {i}", "label": labels[i]} for i in order]


def test_label_distribution_is_sorted_and_stringified():
    assert label_distribution(_rows(), "label") == {"neg": 4, "neu": 2, "pos": 10}
    assert list(label_distribution(_rows(), "label")) == ["neg", "neu", "pos"]
    rows = [{"y": 1}, {"y": 0}, {"y": 1}, {"y": "1"}]
    assert label_distribution(rows, "y") == {"0": 1, "1": 3}
    assert label_distribution([], "label") == {}
    with pytest.raises(ValueError, match="row 1: missing label field 'label'"):
        label_distribution([{"label": "a"}, {"text": "x"}], "label")


@pytest.mark.parametrize(
    ("strategy", "ratio", "after", "added", "removed"),
    [
        ("none", 1.0, {"neg": 4, "neu": 2, "pos": 10}, 0, 0),
        ("downsample", 1.0, {"neg": 2, "neu": 2, "pos": 2}, 0, 10),
        ("downsample", 0.5, {"neg": 4, "neu": 2, "pos": 4}, 0, 6),
        # floor(2 / 0.3) = 6: the smallest / largest ratio 2/6 stays >= 0.3
        ("downsample", 0.3, {"neg": 4, "neu": 2, "pos": 6}, 0, 4),
        ("oversample", 1.0, {"neg": 10, "neu": 10, "pos": 10}, 14, 0),
        ("oversample", 0.5, {"neg": 5, "neu": 5, "pos": 10}, 4, 0),
        # ceil(10 * 0.3) = 3 despite 10 * 0.3 == 3.0000000000000004 in floating point
        ("oversample", 0.3, {"neg": 4, "neu": 3, "pos": 10}, 1, 0),
    ],
)
def test_exact_counts(strategy, ratio, after, added, removed):
    rows = _rows()
    out, report = balance_rows(rows, "label", strategy=strategy, target_ratio=ratio, seed=3)
    assert isinstance(report, BalanceReport)
    assert report.before == {"neg": 4, "neu": 2, "pos": 10}
    assert report.after == after == label_distribution(out, "label")
    assert (report.added, report.removed) == (added, removed)
    assert len(out) == 16 + added - removed
    assert min(after.values()) / max(after.values()) >= ratio or strategy == "none"
    assert report.to_dict() == {
        "before": {"neg": 4, "neu": 2, "pos": 10},
        "after": after,
        "strategy": strategy,
        "target_ratio": ratio,
        "added": added,
        "removed": removed,
    }
    json.dumps(report.to_dict())


def test_downsample_keeps_a_seeded_subset_in_original_order():
    rows = _rows()
    original = copy.deepcopy(rows)
    out, _ = balance_rows(rows, "label", strategy="downsample", target_ratio=0.5, seed=1)
    assert rows == original  # input untouched
    positions = [rows.index(row) for row in out]
    assert positions == sorted(positions)  # a subsequence of the input
    assert all("_augmented" not in row for row in out)
    assert all(row is not source for row in out for source in rows)  # copies
    # every "neg" and "neu" row survives (they are at or under the cap of 4)
    assert [r for r in out if r["label"] != "pos"] == [r for r in rows if r["label"] != "pos"]
    again, _ = balance_rows(rows, "label", strategy="downsample", target_ratio=0.5, seed=1)
    assert again == out
    picks = {
        tuple(r["text"] for r in balance_rows(rows, "label", strategy="downsample", seed=s)[0])
        for s in range(6)
    }
    assert len(picks) > 1  # the seed matters


def test_oversample_appends_marked_duplicates():
    rows = _rows()
    original = copy.deepcopy(rows)
    out, report = balance_rows(rows, "label", strategy="oversample", target_ratio=1.0, seed=7)
    assert rows == original
    assert out[:16] == rows  # originals first, unchanged and unmarked
    extra = out[16:]
    assert len(extra) == report.added == 14
    assert all(row["_augmented"] == "oversample" for row in extra)
    by_text = {row["text"]: row for row in rows}
    for row in extra:
        source = by_text[row["text"]]
        assert {k: v for k, v in row.items() if k != "_augmented"} == source
    neg_texts = {row["text"] for row in extra if row["label"] == "neg"}
    assert len(neg_texts) > 1  # duplicates are drawn randomly, not one row repeated
    again, _ = balance_rows(rows, "label", strategy="oversample", target_ratio=1.0, seed=7)
    assert again == out


def test_single_class_and_empty_input_are_no_ops():
    rows = [{"label": "a", "text": str(i)} for i in range(3)]
    for strategy in ("downsample", "oversample"):
        out, report = balance_rows(rows, "label", strategy=strategy)
        assert out == rows and (report.added, report.removed) == (0, 0)
    out, report = balance_rows([], "label", strategy="oversample")
    assert out == [] and report.before == report.after == {}


def test_invalid_arguments():
    with pytest.raises(ValueError, match="target_ratio"):
        balance_rows(_rows(), "label", strategy="oversample", target_ratio=0)
    with pytest.raises(ValueError, match="target_ratio"):
        balance_rows(_rows(), "label", strategy="downsample", target_ratio=1.5)
    with pytest.raises(ValueError, match="strategy"):
        balance_rows(_rows(), "label", strategy="smote")  # type: ignore[arg-type]
