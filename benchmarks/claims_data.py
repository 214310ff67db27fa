"""The data behind `benchmarks/claims.py`, built from ../shared/data only (never text
written here), into a folder of JSONL files that the recipes and `ft-plugin eval` read.

* cmedical: exact-duplicate questions dropped (a duplicate on both sides of the split
  would leak), then a seeded 30% of each department held out *before anything else*;
  every evaluation set is a seeded sample of 200 held-out rows that fit the training
  length (the trainer drops longer rows, so a longer test row would be scored cut).
* long documents: PubMedQA contexts and long answers concatenated per MeSH topic into
  documents of at least 2,048 tokens, held out by topic.
* PubMedQA: the 500 standard test PMIDs and the 500 others, as `quality_pubmedqa.py`.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from _common import pubmedqa_records

CARDIOLOGY, NEUROLOGY = "心血管科", "神经科"
SPECIALTIES = {"cardiology": CARDIOLOGY, "neurology": NEUROLOGY}
HOLDOUT_SHARE = 0.3
EVAL_ROWS = 200
# Rows rendered by the medical template carry its system prompt and chat markup.
TEMPLATE_TOKENS = 64


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts)["input_ids"]]


def cmedical_split(source: Path, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, held-out) rows of ``internal_medicine.csv``: unique questions, 30% of
    every department held out with a seeded shuffle."""
    from ft_plugin.data.reading import read_rows

    seen: set[str] = set()
    by_department: dict[str, list[dict]] = defaultdict(list)
    for row in read_rows(str(source / "internal_medicine.csv")):
        ask, answer = str(row["ask"] or "").strip(), str(row["answer"] or "").strip()
        if not ask or not answer or ask in seen:
            continue
        seen.add(ask)
        by_department[row["department"]].append(
            {"ask": ask, "answer": answer, "department": row["department"]}
        )
    train, held = [], []
    for department in sorted(by_department):
        rows = by_department[department]
        random.Random(f"{seed}-{department}").shuffle(rows)
        cut = round(len(rows) * HOLDOUT_SHARE)
        held += rows[:cut]
        train += rows[cut:]
    return train, held


def fitting(rows: list[dict], tokenizer: Any, sequence_len: int) -> list[dict]:
    """The rows whose question and answer fit ``sequence_len`` with the template."""
    lengths = _tokens(tokenizer, [r["ask"] + r["answer"] for r in rows])
    return [r for r, n in zip(rows, lengths, strict=True) if n + TEMPLATE_TOKENS <= sequence_len]


def sample(rows: list[dict], n: int, seed: int) -> list[dict]:
    return random.Random(seed).sample(rows, min(n, len(rows)))


def cmedical_files(
    source: Path, folder: Path, tokenizer: Any, *, sequence_len: int, seed: int = 0
) -> dict[str, Any]:
    """Training pools and 200-row evaluation sets: ``general`` (every department but the
    two specialties) and one per specialty; returns the paths and the row counts."""
    train, held = cmedical_split(source, seed)
    specialties = set(SPECIALTIES.values())
    paths: dict[str, Any] = {}
    counts: dict[str, Any] = {"unique_rows": len(train) + len(held), "held_out": len(held)}
    groups = {"general": lambda r: r["department"] not in specialties}
    groups |= {name: (lambda r, d=dept: r["department"] == d) for name, dept in SPECIALTIES.items()}
    for name, member in groups.items():
        pool = fitting([r for r in train if member(r)], tokenizer, sequence_len)
        test = sample(
            fitting([r for r in held if member(r)], tokenizer, sequence_len), EVAL_ROWS, seed
        )
        paths[f"{name}_train"] = write_jsonl(folder / f"{name}_train.jsonl", pool)
        paths[f"{name}_test"] = write_jsonl(folder / f"{name}_test.jsonl", test)
        counts[name] = {"train_pool": len(pool), "test": len(test),
                        "test_departments": dict(Counter(r["department"] for r in test))}  # fmt: skip
    return {"paths": paths, "counts": counts}


def _topic(meshes: list[str], frequency: Counter, rows: int) -> str:
    """A row's topic: its most common MeSH heading that is not a check tag (Humans, Male,
    Adult…: headings on more than a tenth of the rows), so that topics gather many rows."""
    headings = [m.split("/")[0].strip() for m in meshes]
    topical = [h for h in headings if frequency[h] <= rows / 10]
    return max(topical, key=lambda h: (frequency[h], h)) if topical else "other"


def long_documents(source: Path, tokenizer: Any, *, min_tokens: int = 2048) -> list[dict]:
    """PubMedQA abstracts (contexts, then the long answer) concatenated per MeSH topic into
    documents of at least ``min_tokens`` tokens; a topic's remainder joins its last
    document, and topics too small for one document are left out."""
    data = json.loads((source / "ori_pqal.json").read_text())
    headings = [[m.split("/")[0].strip() for m in row.get("MESHES", [])] for row in data.values()]
    frequency = Counter(h for row in headings for h in set(row))
    by_topic: dict[str, list[str]] = defaultdict(list)
    for pmid in sorted(data):
        row = data[pmid]
        text = " ".join(row["CONTEXTS"]) + " " + row["LONG_ANSWER"]
        by_topic[_topic(row.get("MESHES", []), frequency, len(data))].append(text)
    documents = []
    for topic in sorted(by_topic):
        texts = by_topic[topic]
        lengths = _tokens(tokenizer, texts)
        current, size, own = [], 0, []
        for text, n in zip(texts, lengths, strict=True):
            current.append(text)
            size += n
            if size >= min_tokens:
                own.append(current)
                current, size = [], 0
        if current and own:
            own[-1] += current
        documents += [{"text": "\n\n".join(parts), "topic": topic} for parts in own]
    return documents


LONG_TEST_DOCUMENTS = 16  # of the held-out topics' documents: ~2 x 2,048-token windows each


def long_document_files(
    source: Path, folder: Path, tokenizer: Any, *, seed: int = 0, test_share: float = 0.25
) -> dict[str, Any]:
    """Long documents split by topic (no topic on both sides), written as completion rows;
    a seeded sample of the held-out documents is scored (the corpus makes only ~110)."""
    documents = long_documents(source, tokenizer)
    topics = sorted({d["topic"] for d in documents})
    random.Random(seed).shuffle(topics)
    held = set(topics[: max(1, round(len(topics) * test_share))])
    train = [d for d in documents if d["topic"] not in held]
    test = sample([d for d in documents if d["topic"] in held], LONG_TEST_DOCUMENTS, seed)
    lengths = _tokens(tokenizer, [d["text"] for d in documents])
    return {
        "paths": {
            "long_train": write_jsonl(folder / "long_train.jsonl", train),
            "long_test": write_jsonl(folder / "long_test.jsonl", test),
        },  # fmt: skip
        "counts": {
            "documents": len(documents),
            "train": len(train),
            "test": len(test),
            "topics": len(topics),
            "min_tokens": min(lengths),
            "median_tokens": sorted(lengths)[len(lengths) // 2],
            "max_tokens": max(lengths),
        },  # fmt: skip
    }


def pubmedqa_files(source: Path, folder: Path, *, train_rows: int, seed: int = 0) -> dict[str, Any]:
    """A seeded sample of the non-test PMIDs to train on, and the 500 test PMIDs."""
    records = sorted(pubmedqa_records(source), key=lambda r: r[0])
    test = [record for _, record, in_test in records if in_test]
    train = sample([record for _, record, in_test in records if not in_test], train_rows, seed)
    return {
        "paths": {
            "pubmedqa_train": write_jsonl(folder / "pubmedqa_train.jsonl", train),
            "pubmedqa_test": write_jsonl(folder / "pubmedqa_test.jsonl", test),
        },  # fmt: skip
        "counts": {
            "train": len(train),
            "test": len(test),
            "test_labels": dict(Counter(r["answer"] for r in test)),
        },  # fmt: skip
    }
