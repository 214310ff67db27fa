"""Classification metrics for labels read from generated answers.

Scales (the same in every ``ft_plugin.evaluate`` module):

* ``accuracy``, ``macro_f1``, per-class precision, recall and F1, and
  ``unparseable_rate`` are on 0-1;
* text metrics (``bleu``, ``chrf``, ``rouge*``, see :mod:`.text_metrics`) are on 0-100.

A generated answer becomes a label with :func:`parse_label`; an answer that names no
label (``None``) is *unparseable* and always counts as wrong: in the accuracy, in the
recall of its true class, and in the macro-F1. The confusion matrix keeps such answers
in a last column of its own, ``"unparseable"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import f1_score, precision_recall_fscore_support

from ft_plugin.utils.text import CJK_CLASS, has_cjk

__all__ = [
    "UNPARSEABLE",
    "ClassificationScores",
    "classification_metrics",
    "parse_label",
    "plot_confusion_matrix",
]

UNPARSEABLE = "unparseable"
# Stands in for None predictions for scikit-learn; it can never be a real label.
_SENTINEL = "\x00<unparseable>\x00"

# A character that continues a Latin word: letters and digits, but not CJK or "_".
_WORD = f"[^\\W_{CJK_CLASS}]"
# Leading quotes, brackets, markdown (** _ # > `), punctuation and list bullets ("- ").
_LEAD_RE = re.compile(r"^(?:[\s*_#>`\"'“”‘’「」『』《》()\[\]（）【】:：.,;!?。，、•]|[-+](?=\s))+")


def _occurs(label: str, text: str, *, at_start: bool) -> bool:
    """``label`` as a whole word in ``text`` (anywhere, or at its start).

    Labels written in CJK have no word boundaries, so they match as plain substrings;
    CJK characters do not count as word characters around a Latin label ("是yes").
    """
    if has_cjk(label):
        return text.startswith(label) if at_start else label in text
    before = "^" if at_start else f"(?<!{_WORD})"
    return re.search(before + re.escape(label) + f"(?!{_WORD})", text) is not None


def parse_label(text: str, labels: list[str]) -> str | None:
    """The label a generated answer gives, or None when it names none or several.

    The answer is stripped, lower-cased and freed of leading quotes, markdown and
    punctuation. If it then starts with a label (case-insensitive, whole word; the
    longest label wins), that label is the answer: ``"yes and no"`` gives ``"yes"``.
    Otherwise the label is returned only when exactly one label occurs as a whole word
    in the first line (``"The answer is yes"``); none or several give None.

    Example:
        >>> parse_label("**Bullish**.", ["Bullish", "Bearish", "Neutral"])
        'Bullish'
        >>> parse_label("The answer is yes", ["yes", "no"]), parse_label("maybe", ["yes", "no"])
        ('yes', None)
    """
    if not labels:
        raise ValueError("parse_label needs at least one label")
    lowered = {label.lower(): label for label in labels}
    lines = text.strip().lower().splitlines()
    first_line = _LEAD_RE.sub("", lines[0]) if lines else ""
    for key in sorted(lowered, key=len, reverse=True):
        if _occurs(key, first_line, at_start=True):
            return lowered[key]
    found = [key for key in lowered if _occurs(key, first_line, at_start=False)]
    return lowered[found[0]] if len(found) == 1 else None


@dataclass
class ClassificationScores:
    """Accuracy, macro-F1 and per-class scores (all on 0-1) with the confusion matrix.

    ``per_class[label]`` holds ``precision``, ``recall``, ``f1`` (0-1) and ``support``
    (number of true examples). ``confusion[i][j]`` counts examples of true label
    ``labels[i]`` predicted as ``labels[j]``; the last column counts unparseable answers.

    Example:
        >>> s = classification_metrics(["yes", "no"], ["yes", None], ["yes", "no"])
        >>> s.accuracy, s.unparseable, s.confusion
        (0.5, 1, [[1, 0, 0], [0, 0, 1]])
    """

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    unparseable: int
    unparseable_rate: float

    def to_dict(self) -> dict[str, float]:
        """Flat map: accuracy, macro_f1, unparseable_rate, precision_<label>, recall_<label>."""
        out = {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "unparseable_rate": self.unparseable_rate,
        }
        for label, scores in self.per_class.items():
            out[f"precision_{label}"] = scores["precision"]
            out[f"recall_{label}"] = scores["recall"]
        return out


def classification_metrics(
    y_true: list[str], y_pred: list[str | None], labels: list[str]
) -> ClassificationScores:
    """Score predicted labels (None = unparseable, always wrong) against true labels.

    A prediction that is not one of ``labels`` counts as unparseable too. Macro-F1 is
    scikit-learn's ``f1_score(average="macro", labels=labels, zero_division=0)``.

    Example:
        >>> s = classification_metrics(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
        >>> round(s.accuracy, 3), s.per_class["b"]["precision"], s.to_dict()["recall_a"]
        (0.667, 0.5, 0.5)

    Raises:
        ValueError: empty or mismatched inputs, duplicate labels, or a true label that
            is not in ``labels``.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if not y_true:
        raise ValueError("no examples to score: y_true and y_pred are empty")
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be non-empty and unique, got {labels!r}")
    unknown = sorted(set(y_true) - set(labels))
    if unknown:
        raise ValueError(f"true labels not in labels {labels!r}: {unknown!r}")
    pred = [p if p in labels else _SENTINEL for p in y_pred]
    columns = {label: j for j, label in enumerate(labels)}
    confusion = [[0] * (len(labels) + 1) for _ in labels]
    for t, p in zip(y_true, pred, strict=True):
        confusion[columns[t]][columns.get(p, len(labels))] += 1
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, pred, labels=labels, zero_division=0
    )
    per_class = {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    unparseable = pred.count(_SENTINEL)
    return ClassificationScores(
        accuracy=sum(t == p for t, p in zip(y_true, pred, strict=True)) / len(y_true),
        macro_f1=float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion,
        unparseable=unparseable,
        unparseable_rate=unparseable / len(y_true),
    )


def plot_confusion_matrix(
    scores: ClassificationScores, labels: list[str], path: str | Path, title: str
) -> Path:
    """Write the confusion matrix as a PNG heat map with the counts in the cells.

    Rows are true labels, columns predicted labels plus ``"unparseable"``.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        s = classification_metrics(["a", "b"], ["a", None], ["a", "b"])
        plot_confusion_matrix(s, ["a", "b"], tmp / "cm.png", "demo").suffix  # '.png'
    """
    matrix = scores.confusion
    if len(matrix) != len(labels) or any(len(row) != len(labels) + 1 for row in matrix):
        raise ValueError(f"confusion matrix does not fit {len(labels)} labels")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ft_plugin.utils.plots import new_figure, save_png

    fig, ax = new_figure(1.5 + 0.9 * (len(labels) + 1), 1.2 + 0.8 * len(labels), dpi=120)
    image = ax.imshow(matrix, cmap="Blues", aspect="auto", vmin=0)
    fig.colorbar(image, ax=ax)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_xticks(range(len(labels) + 1), [*labels, UNPARSEABLE], rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_png(fig, path)
