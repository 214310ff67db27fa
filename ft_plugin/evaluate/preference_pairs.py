"""Preference pairs from what ft-plugin already collects, for `rl: dpo` (`ft-plugin data
preferences`): the Space's blind ratings, filled human-evaluation sheets, or a model's own
greedy answers set against the reference answers of SFT rows.

Every source gives rows in Axolotl's ``chat_template.default`` shape (``messages``,
``chosen``, ``rejected``; the model that gave each answer under ``chosen_model`` /
``rejected_model`` where it is known) and counts what it dropped and why:

- ratings and sheets: a tie (or equal totals) is no preference; a prompt rated both ways
  (A over B, and B over A) is a contradiction and both ratings are dropped; the same
  pair rated the same way again is merged into one (counted as ``duplicate``); different
  answer pairs for one prompt are kept apart.
- model answers: a row whose greedy answer equals the reference teaches nothing (dropped).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.errors import DataError

RATINGS_FILE = "ratings.jsonl"  # what the Space's Rate tab appends to (space/ratings.py)
TIE, DUPLICATE, CONTRADICTED = "tie", "duplicate", "contradicted"


@dataclass
class PairSet:
    """Pairs built from one source, and the rows that did not become one."""

    source: str
    rows_in: int = 0
    pairs: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        return {"source": self.source, "rows_in": self.rows_in, "pairs_out": len(self.pairs),
                "dropped": dict(self.dropped)}  # fmt: skip


def _pair(prompt: Any, chosen: str, rejected: str, **known: str) -> dict[str, Any]:
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    return {"messages": messages, "chosen": {"role": "assistant", "content": chosen},
            "rejected": {"role": "assistant", "content": rejected}, **known}  # fmt: skip


def settle(candidates: Iterable[tuple[str, str, str, dict[str, str]]], out: PairSet) -> None:
    """Add (prompt, winner, loser, models) judgements to ``out`` by the module's rule:
    repeats merged, contradictions dropped both ways.

    Example:
        >>> out = PairSet("x")
        >>> settle([("q", "a", "b", {}), ("q", "a", "b", {}), ("q", "c", "d", {}),
        ...         ("q", "d", "c", {})], out)
        >>> len(out.pairs), dict(out.dropped)
        (1, {'duplicate': 1, 'contradicted': 2})
    """
    seen: dict[tuple[str, frozenset[str]], list[tuple[str, str, str, dict[str, str]]]] = {}
    for judged in candidates:
        prompt, winner, loser, _ = judged
        seen.setdefault((prompt, frozenset((winner, loser))), []).append(judged)
    for judgements in seen.values():
        winners = {winner for _, winner, _, _ in judgements}
        if len(winners) > 1:
            out.dropped[CONTRADICTED] += len(judgements)
            continue
        out.dropped[DUPLICATE] += len(judgements) - 1
        prompt, winner, loser, models = judgements[0]
        out.pairs.append(_pair(prompt, winner, loser, **models))
    out.dropped = +out.dropped  # no zero counts in the report


def pairs_from_ratings(path: str | Path, adapter: str | None = None) -> PairSet:
    """Pairs from the Space's ``ratings.jsonl`` (or its data folder): the answer the rater
    preferred is chosen, whichever side of the blind A/B it was shown on.

    Example (usage, not run as a doctest: it needs a Space's ratings)::

        pairs_from_ratings("space-data/", adapter="medical-lora").pairs[0]["chosen_model"]
    """
    path = Path(path)
    path = path / RATINGS_FILE if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no ratings file (the Space writes DATA_DIR/{RATINGS_FILE})")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    return pairs_from_records(records, adapter, source=str(path))


def pairs_from_records(
    records: list[dict[str, Any]], adapter: str | None = None, *, source: str = "ratings"
) -> PairSet:
    """Pairs from rating records as the Space writes them (``prompt``, ``answer_a`` /
    ``answer_b``, ``a`` / ``b`` naming the model shown there, ``preference`` a, b or tie).

    Example:
        >>> r = {"prompt": "q", "answer_a": "x", "answer_b": "y", "a": "base", "b": "tuned",
        ...      "preference": "b"}
        >>> pairs_from_records([r]).pairs[0]["chosen"]
        {'role': 'assistant', 'content': 'y'}
    """
    out, judged = PairSet(source), []
    for record in records:
        if adapter and record.get("adapter") != adapter:
            continue
        out.rows_in += 1
        slot = record.get("preference")
        if slot not in ("a", "b"):
            out.dropped[TIE] += 1
            continue
        other = "b" if slot == "a" else "a"
        models = {"chosen_model": record.get(slot, ""), "rejected_model": record.get(other, "")}
        judged.append((record["prompt"], record[f"answer_{slot}"], record[f"answer_{other}"],
                       models))  # fmt: skip
    settle(judged, out)
    return out


def pairs_from_sheets(paths: Sequence[str | Path], key_path: str | Path | None = None) -> PairSet:
    """Pairs from filled human-evaluation sheets (``ft-plugin eval --human-sheet``): the
    answer with the higher total of the criteria a rater scored on both sides is chosen;
    equal totals, or a row scored on one side only, are no preference.

    Example (usage, not run as a doctest: it needs filled sheets)::

        pairs_from_sheets(["eval/ratings_ann.csv", "eval/ratings_bob.csv"]).report()
    """
    from .human import unblinded_rows

    out, judged = PairSet(", ".join(str(p) for p in paths)), []
    for row in unblinded_rows(paths, key_path):
        out.rows_in += 1
        scored = [c for c in row["scores"]["base"] if c in row["scores"]["tuned"]]
        totals = {m: sum(row["scores"][m][c] for c in scored) for m in ("base", "tuned")}
        if not scored or totals["base"] == totals["tuned"]:
            out.dropped["no_scores" if not scored else TIE] += 1
            continue
        winner = max(totals, key=totals.__getitem__)
        loser = "base" if winner == "tuned" else "tuned"
        judged.append((row["prompt"], row["answers"][winner], row["answers"][loser],
                       {"chosen_model": winner, "rejected_model": loser}))  # fmt: skip
    settle(judged, out)
    return out


def write_pairs(pairs: PairSet, output: str | Path) -> tuple[Path, Path]:
    """The pairs as JSON Lines and ``OUTPUT.report.json`` beside them, each written whole."""
    from ft_plugin.utils.io import write_text_atomic

    output = Path(output)
    if not pairs.pairs:
        raise DataError(f"{pairs.source}: no pairs ({dict(pairs.dropped) or 'no rows'}); "
                        "nothing written")  # fmt: skip
    lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs.pairs)
    write_text_atomic(output, lines)
    report = output.with_suffix(".report.json")
    write_text_atomic(report, json.dumps(pairs.report(), indent=2, ensure_ascii=False) + "\n")
    return output, report


@dataclass(frozen=True)
class ModelAnswers:
    """How `--rejected-from` answers: which model, on how many rows, how long an answer."""

    target: str
    max_samples: int | None = None
    max_new_tokens: int = 256
    batch_size: int = 1
    seed: int = 42


def pairs_from_model(rows: Any, answers: ModelAnswers) -> PairSet:
    """Pairs from SFT rows (a ``DatasetSection``: file, type and fields as in a recipe):
    the row's reference answer is chosen, the model's own greedy answer rejected. The rows
    render as training renders them (a domain template's system prompt included); a seeded
    ``max_samples`` of them are answered, with a progress bar.

    Example (usage, not run as a doctest: it needs a model)::

        spec = DatasetSection(path="train.jsonl", type="medical")
        pairs_from_model(spec, ModelAnswers("runs/medical-lora", max_samples=200))
    """
    from ft_plugin.data.build import build_examples

    from .generation import generate_answers
    from .targets import load_target

    examples, dropped = build_examples([rows], answers.seed)
    examples = [e for e in examples if e.get("prompt") and e.get("completion")]
    examples = examples[: answers.max_samples] if answers.max_samples else examples
    out = PairSet(rows.path, rows_in=len(examples), dropped=Counter(dropped))
    if not examples:
        raise DataError(f"{rows.path}: no prompt and answer rows for type {rows.type}")
    loaded = load_target(answers.target, with_baseline=False)
    generated = generate_answers(
        loaded.model, loaded.tokenizer, examples, max_new_tokens=answers.max_new_tokens,
        batch_size=answers.batch_size, desc=f"answering as {answers.target}",
    )  # fmt: skip
    for example, text in zip(examples, generated.texts, strict=True):
        reference = example["completion"][-1]["content"]
        if not text.strip():
            out.dropped["empty_model_answer"] += 1
        elif text.strip() == reference.strip():
            out.dropped["model_answer_equals_reference"] += 1
        else:
            out.pairs.append(_pair(example["prompt"], reference, text, chosen_model="reference",
                                   rejected_model=answers.target))  # fmt: skip
    out.dropped = +out.dropped
    return out
