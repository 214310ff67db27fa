"""Classification metrics and label parsing, checked against hand computations."""

from __future__ import annotations

import pytest

from ft_plugin.evaluate.classification import (
    classification_metrics,
    parse_label,
    plot_confusion_matrix,
)

LABELS = ["pos", "neg", "neu"]
Y_TRUE = ["pos", "pos", "pos", "neg", "neg", "neu", "neu", "neu"]
Y_PRED = ["pos", "neg", None, "neg", "pos", "neu", None, "neu"]


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def test_accuracy_counts_none_as_wrong():
    correct = sum(t == p for t, p in zip(Y_TRUE, Y_PRED, strict=True))  # 4 of 8
    scores = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert scores.accuracy == pytest.approx(correct / 8) == pytest.approx(0.5)


def test_per_class_precision_recall_f1_by_hand():
    # pos: predicted at 0 (pos) and 4 (neg) -> P 1/2; true at 0, 1, 2 -> R 1/3
    # neg: predicted at 1 (pos) and 3 (neg) -> P 1/2; true at 3, 4 -> R 1/2
    # neu: predicted at 5, 7 (both neu) -> P 1; true at 5, 6, 7 -> R 2/3
    hand = {"pos": (1 / 2, 1 / 3, 3), "neg": (1 / 2, 1 / 2, 2), "neu": (1.0, 2 / 3, 3)}
    scores = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    for label, (p, r, support) in hand.items():
        got = scores.per_class[label]
        assert got["precision"] == pytest.approx(p), label
        assert got["recall"] == pytest.approx(r), label
        assert got["f1"] == pytest.approx(_f1(p, r)), label
        assert got["support"] == support
    macro = sum(_f1(p, r) for p, r, _ in hand.values()) / 3  # (0.4 + 0.5 + 0.8) / 3
    assert scores.macro_f1 == pytest.approx(macro) == pytest.approx(1.7 / 3)


def test_confusion_matrix_has_unparseable_column():
    scores = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert scores.confusion == [[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 2, 1]]
    assert scores.unparseable == 2
    assert scores.unparseable_rate == pytest.approx(0.25)


def test_all_unparseable_scores_zero_and_unknown_prediction_is_unparseable():
    scores = classification_metrics(["a", "b"], [None, "maybe"], ["a", "b"])
    assert scores.accuracy == 0.0 and scores.macro_f1 == 0.0
    assert scores.unparseable == 2 and scores.unparseable_rate == 1.0
    assert scores.per_class["a"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores.confusion == [[0, 0, 1], [0, 0, 1]]


def test_label_never_seen_gets_zero_not_error():
    scores = classification_metrics(["a", "a"], ["a", "a"], ["a", "b"])
    assert scores.accuracy == 1.0
    assert scores.per_class["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores.macro_f1 == pytest.approx(0.5)  # averaged over both labels


def test_to_dict_flat_keys():
    result = classification_metrics(Y_TRUE, Y_PRED, LABELS).to_dict()
    assert set(result) == {
        "accuracy",
        "macro_f1",
        "unparseable_rate",
        *(f"precision_{x}" for x in LABELS),
        *(f"recall_{x}" for x in LABELS),
    }
    assert result["recall_neu"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "message"),
    [
        (["a"], ["a", "b"], ["a", "b"], "y_true has 1 items but y_pred has 2"),
        ([], [], ["a"], "empty"),
        (["a"], ["a"], [], "non-empty and unique"),
        (["a"], ["a"], ["a", "a"], "non-empty and unique"),
        (["c"], ["a"], ["a", "b"], r"true labels not in labels .*'c'"),
    ],
)
def test_bad_inputs_raise(y_true, y_pred, labels, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, y_pred, labels)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("Bullish.", ["Bullish", "Bearish", "Neutral"], "Bullish"),
        ("**neutral**", ["Bullish", "Bearish", "Neutral"], "Neutral"),
        ("**Bullish**.", ["Bullish", "Bearish", "Neutral"], "Bullish"),
        ('  "Bearish" because rates fell', ["Bullish", "Bearish", "Neutral"], "Bearish"),
        ("- Neutral\nmore text", ["Bullish", "Bearish", "Neutral"], "Neutral"),
        ("Neutrality", ["Bullish", "Bearish", "Neutral"], None),
        ("The answer is yes", ["yes", "no"], "yes"),
        # The first-token rule wins: an answer that starts with a label is that label.
        ("yes and no", ["yes", "no"], "yes"),
        # Not at the start and two labels in the first line: ambiguous.
        ("I think yes and no", ["yes", "no"], None),
        # Only the first line is searched.
        ("I am not sure.\nyes", ["yes", "no"], None),
        ("maybe", ["yes", "no"], None),
        ("", ["yes", "no"], None),
        ("答案是yes", ["yes", "no"], "yes"),
        ("正面情绪。", ["正面", "负面"], "正面"),
        ("我认为是负面。", ["正面", "负面"], "负面"),
        ("-1", ["-1", "0", "1"], "-1"),
    ],
)
def test_parse_label(text, labels, expected):
    assert parse_label(text, labels) == expected


def test_parse_label_needs_labels():
    with pytest.raises(ValueError, match="at least one label"):
        parse_label("yes", [])


def test_plot_confusion_matrix_writes_png(tmp_path):
    scores = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    path = plot_confusion_matrix(scores, LABELS, tmp_path / "plots" / "cm.png", "Sentiment")
    assert path == tmp_path / "plots" / "cm.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="does not fit"):
        plot_confusion_matrix(scores, ["pos", "neg"], tmp_path / "bad.png", "x")
