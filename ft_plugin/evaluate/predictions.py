"""The answers themselves: ``predictions.jsonl``, one line per evaluated row.

Each line: ``id`` (index among the evaluated rows), ``group`` (with ``--group-by``),
``prompt`` (the last prompt turn), ``reference``, ``base_answer`` / ``tuned_answer``,
``base_scores`` / ``tuned_scores`` (per-row ROUGE F, sentence chrF and BLEU, ``nll`` and
``tokens``); classification rows add ``truth`` and ``base_predicted`` /
``tuned_predicted``. Per-row ROUGE averages to the corpus ROUGE; corpus BLEU and chrF
pool n-gram counts over the rows and are not the mean of the sentence scores.

report.md shows a few rows side by side (:func:`showcase`): the best and the worst by
the change in ROUGE-L (or chrF; the tuned score itself without a baseline), and a few
seeded random others.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ft_plugin.data.formats import GROUP

__all__ = ["prediction_rows", "showcase", "showcase_score", "write_predictions"]

ROLES = {"target": "tuned", "baseline": "base"}
_SCORE_KEYS = ("rouge1", "rouge2", "rougeL", "chrf", "bleu", "nll", "tokens")


def _text(messages: Any) -> str:
    if isinstance(messages, str):  # a prompt already rendered (a preference pair's)
        return messages
    return messages[-1]["content"] if isinstance(messages, list) and messages else ""


def prediction_rows(
    examples: list[dict[str, Any]], results: dict[str, Any]
) -> list[dict[str, Any]]:
    """One dict per evaluated row; empty when no model generated an answer or a label."""
    if not any(r.answers is not None or "predicted" in r.rows for r in results.values()):
        return []
    out = []
    for i, example in enumerate(examples):
        row: dict[str, Any] = {"id": i}
        if GROUP in example:
            row["group"] = example[GROUP]
        row["prompt"] = _text(example.get("prompt")) or example.get("text", "")
        row["reference"] = _text(example.get("completion"))
        for role, result in sorted(results.items(), key=lambda kv: kv[0] != "baseline"):
            name = ROLES[role]
            if result.answers is not None:
                row[f"{name}_answer"] = result.answers[i]
            if "predicted" in result.rows:
                row["truth"] = result.rows["truth"][i]
                row[f"{name}_predicted"] = result.rows["predicted"][i]
            scores = {k: result.rows[k][i] for k in _SCORE_KEYS if k in result.rows}
            if scores:
                row[f"{name}_scores"] = scores
        out.append(row)
    return out


def showcase_score(rows: list[dict[str, Any]]) -> str | None:
    """The per-row score rows are ordered by: ROUGE-L, else chrF, else none."""
    scores = rows[0].get("tuned_scores", {}) if rows else {}
    return next((k for k in ("rougeL", "chrf") if k in scores), None)


def _change(row: dict[str, Any], key: str) -> float:
    tuned = row["tuned_scores"][key]
    return tuned - row["base_scores"][key] if "base_scores" in row else tuned


def showcase(
    rows: list[dict[str, Any]], seed: int, each: int = 2
) -> list[tuple[str, dict[str, Any]]]:
    """(why shown, row) for the ``each`` best, ``each`` worst and ``each`` random rows.

    Example:
        >>> rows = [{"id": i, "tuned_scores": {"rougeL": s}} for i, s in enumerate([5, 9, 1, 7, 3])]
        >>> [(why, r["id"]) for why, r in showcase(rows, seed=0, each=1)]
        [('best', 1), ('worst', 2), ('random', 3)]
    """
    key = showcase_score(rows)
    if key is None:
        return []
    ordered = sorted(rows, key=lambda r: (-_change(r, key), r["id"]))
    best, worst = ordered[:each], ordered[::-1][: min(each, max(0, len(ordered) - each))]
    shown = {r["id"] for r in best + worst}
    rest = [r for r in rows if r["id"] not in shown]
    picked = sorted(random.Random(seed).sample(rest, min(each, len(rest))), key=lambda r: r["id"])
    return [("best", r) for r in best] + [("worst", r) for r in worst] + [("random", r) for r in picked]  # fmt: skip


def write_predictions(rows: list[dict[str, Any]], path: Path) -> Path:
    """JSON Lines, UTF-8, non-ASCII kept as written (心血管科, not \\u5fc3…)."""
    import json

    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path
