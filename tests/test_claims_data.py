"""The data behind benchmarks/claims.py: held-out splits before anything else, long
documents made of real text only. Reads ../shared/data in place; skipped without it."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import require

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "benchmarks"))

claims_data = require("claims_data", "benchmarks/claims_data.py, in this repository")


class CharTokenizer:
    """One token per character: enough to check length rules without a model."""

    def __call__(self, texts: list[str]) -> dict[str, list[list[int]]]:
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


@pytest.mark.skipif(not (SHARED / "cmedical").is_dir(), reason="../shared/data/cmedical not found")
def test_cmedical_holds_out_30_percent_of_every_department_with_no_question_on_both_sides() -> None:
    train, held = claims_data.cmedical_split(SHARED / "cmedical")
    asks_train, asks_held = {r["ask"] for r in train}, {r["ask"] for r in held}
    assert not asks_train & asks_held
    assert len(asks_train) == len(train) and len(asks_held) == len(held)  # duplicates dropped
    total, out = (
        Counter(r["department"] for r in train + held),
        Counter(r["department"] for r in held),
    )
    for department, n in total.items():
        assert out[department] == round(n * claims_data.HOLDOUT_SHARE)
    again, _ = claims_data.cmedical_split(SHARED / "cmedical")
    assert again == train  # seeded


@pytest.mark.skipif(not (SHARED / "cmedical").is_dir(), reason="../shared/data/cmedical not found")
def test_cmedical_evaluation_sets_have_200_fitting_rows(tmp_path: Path) -> None:
    built = claims_data.cmedical_files(
        SHARED / "cmedical", tmp_path, CharTokenizer(), sequence_len=512
    )
    for name in ("general", "cardiology", "neurology"):
        rows = [json.loads(x) for x in built["paths"][f"{name}_test"].read_text().split("\n")[:-1]]
        assert len(rows) == 200
        assert all(len(r["ask"] + r["answer"]) + claims_data.TEMPLATE_TOKENS <= 512 for r in rows)
    cardiology = built["paths"]["cardiology_test"].read_text()
    assert claims_data.CARDIOLOGY in cardiology and claims_data.CARDIOLOGY not in (
        built["paths"]["general_train"].read_text()
    )


@pytest.mark.skipif(not (SHARED / "pubmedqa").is_dir(), reason="../shared/data/pubmedqa not found")
def test_long_documents_are_real_abstracts_of_2048_tokens_and_more_split_by_topic(
    tmp_path: Path,
) -> None:
    source = json.loads((SHARED / "pubmedqa" / "ori_pqal.json").read_text())
    abstracts = {" ".join(r["CONTEXTS"]) + " " + r["LONG_ANSWER"] for r in source.values()}
    built = claims_data.long_document_files(SHARED / "pubmedqa", tmp_path, CharTokenizer(), seed=0)
    train = [json.loads(x) for x in built["paths"]["long_train"].read_text().split("\n")[:-1]]
    test = [json.loads(x) for x in built["paths"]["long_test"].read_text().split("\n")[:-1]]
    assert train and test and not {d["topic"] for d in train} & {d["topic"] for d in test}
    for document in train + test:
        assert len(document["text"]) >= 2048
        assert all(part in abstracts for part in document["text"].split("\n\n"))


@pytest.mark.skipif(not (SHARED / "pubmedqa").is_dir(), reason="../shared/data/pubmedqa not found")
def test_pubmedqa_trains_outside_the_500_standard_test_pmids(tmp_path: Path) -> None:
    truth = json.loads((SHARED / "pubmedqa" / "test_ground_truth.json").read_text())
    built = claims_data.pubmedqa_files(SHARED / "pubmedqa", tmp_path, train_rows=100)
    train = [json.loads(x) for x in built["paths"]["pubmedqa_train"].read_text().split("\n")[:-1]]
    test = [json.loads(x) for x in built["paths"]["pubmedqa_test"].read_text().split("\n")[:-1]]
    assert (len(train), len(test)) == (100, 500)
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert Counter(r["answer"] for r in test) == Counter(truth.values())


def test_claims_table_has_one_row_per_claim_and_renders_the_timed_invocations() -> None:
    import render_claims

    payload = json.loads((REPO / "benchmarks" / "results" / "claims.json").read_text())
    payload["invocations"] = [{"claims": [4, 9], "cache_empty_at_start": True, "commit": "abc1234",
                               "seconds": 3000.0, "per_claim_seconds": {"4": 2100.0, "9": 900.0}}]  # fmt: skip
    lines = render_claims.claims_section(payload)
    rows = [line for line in lines if line.startswith("| ") and "| **" in line]
    assert [int(r.split("|")[1]) for r in rows] == [c["claim"] for c in payload["claims"]]
    assert all(f"**{c['verdict']}**" in r for c, r in zip(payload["claims"], rows, strict=True))
    assert (
        "- claims 4, 9, from an empty cache: 50 min (4: 35 min, 9: 15 min; evaluations in float32; commit abc1234)"
        in lines
    )


def test_a_claim_rerun_with_a_new_design_keeps_the_numbers_it_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import claims

    monkeypatch.setattr(claims, "RESULTS", tmp_path)

    def entry(design: str, value: float) -> dict:
        return {"claim": 9, "mode": "full", "verdict": "holds", "design": design,
                "measured": {"x": value}, "runs": {}, "commit": "c"}  # fmt: skip

    claims.save_claim(entry("small set, 8 epochs", 1.0))
    claims.save_claim(entry("small set, 8 epochs", 2.0))  # a rerun of the same design
    claims.save_claim(entry("tiny set, 20 epochs", 3.0))
    (saved,) = json.loads((tmp_path / "claims.json").read_text())["claims"]
    assert saved["measured"] == {"x": 3.0}
    assert [(e["design"], e["measured"]) for e in saved["earlier"]] == [
        ("small set, 8 epochs", {"x": 2.0})
    ]


def test_why_sentences_read_their_numbers_from_the_results() -> None:
    import render_claims

    payload = json.loads((REPO / "benchmarks" / "results" / "claims.json").read_text())
    six = next(c for c in payload["claims"] if c["claim"] == 6)
    six["verdict"] = "holds partly"
    six["measured"]["router_accuracy"]["old"] = 0.5
    six["measured"]["new_lift_pct"] = 11.0
    lines = render_claims.claims_section(payload)
    (why,) = [line for line in lines if line.startswith("- **6.**")]
    assert "sends 50.0% of old-task prompts" in why and "by 11%, not 27%" in why


def test_claim_5_renders_a_scarce_department_design_beside_the_full_one() -> None:
    import copy

    import render_claims

    payload = json.loads((REPO / "benchmarks" / "results" / "claims.json").read_text())
    five = next(c for c in payload["claims"] if c["claim"] == 5)
    full = five["measured"]["per_specialty"]["cardiology"]
    scarce = copy.deepcopy(full) | {"specialty": "cardiology", "department_rows": 40}
    for key in ("direct", "ppl_reduction_vs_same_steps_direct_pct"):
        scarce.pop(key)
    scarce["runs"].pop("direct (N steps)")
    scarce["runs"]["direct (2N steps)"]["train_rows"] = 40
    five["measured"]["per_specialty"]["cardiology, 40 rows"] = scarce
    five["measured"]["verdicts"]["cardiology, 40 rows"] = five["verdict"]
    lines = render_claims.claims_section(payload)
    (row,) = [line for line in lines if line.startswith("| 5 | progressive")]
    assert "cardiology held-out, 40 training rows" in row
    (why,) = [line for line in lines if line.startswith("- **5.**")]
    steps = scarce["runs"]["direct (2N steps)"]["steps"]  # 2N steps of 4 rows over 40 rows
    assert f"With 40 cardiology rows ({steps} steps take {steps * 4 // 40} passes over them)" in why
