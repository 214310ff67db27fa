"""LegalBench: balanced accuracy zero-shot vs few-shot-tuned LoRA, on tasks with enough rows.

    python benchmarks/quality_legalbench.py [--max-steps 60]

For each chosen yes/no task (CC BY 4.0, 100+ rows in `../shared/data/legalbench`), half of
its rows (seeded) train one shared adapter through the legal-classification template;
the other half are the test set. Balanced accuracy = mean per-class recall.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, require_shared, save  # noqa: E402

TASKS = {
    "supply_chain_disclosure_disclosed_training": "Does the statement say the company trains its staff on human trafficking and slavery?",
    "supply_chain_disclosure_disclosed_audits": "Does the statement say the company audits its suppliers for trafficking and slavery?",
    "supply_chain_disclosure_disclosed_verification": "Does the statement say the company verifies its supply chain for trafficking and slavery risks?",
}


def split(source: Path, folder: Path, seed: int = 0) -> tuple[Path, dict[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    train_rows, tests = [], {}
    for task, question in TASKS.items():
        with (source / f"{task}.train.tsv").open(newline="", encoding="utf-8") as handle:
            rows = [{"text": r["text"], "question": question, "answer": r["answer"].strip().lower()}
                    for r in csv.DictReader(handle, delimiter="\t")]  # fmt: skip
        random.Random(seed).shuffle(rows)
        half = len(rows) // 2
        train_rows += rows[:half]
        tests[task] = folder / f"{task}.test.jsonl"
        tests[task].write_text("".join(json.dumps(r) + "\n" for r in rows[half:]))
    train_file = folder / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    return train_file, tests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-steps", type=int, default=60)
    args = parser.parse_args()
    source = require_shared("legalbench")
    from ft_plugin.config import load_recipe
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation
    from ft_plugin.train import train

    train_file, tests = split(source, REPO / "runs" / "bench-legalbench-data")
    overrides = [f"datasets=[{{path: {train_file}, type: legal-classification}}]", f"max_steps={args.max_steps}",
                 "sequence_len=512", "micro_batch_size=2", "val_set_size=0", "report_to=none", "save_steps=100000"]  # fmt: skip
    started = time.perf_counter()
    run = train(
        load_recipe("legal-lora", overrides), str(REPO / "runs" / "bench-legalbench")
    ).run_dir
    train_seconds = time.perf_counter() - started
    per_task = {}
    for task, test_file in tests.items():
        settings = EvalSettings(data=str(test_file), template="legal-classification", baseline=True,
                                metrics=["accuracy", "macro_f1"], sequence_len=512)  # fmt: skip
        report, results, _, _ = run_evaluation(str(run), settings)
        balanced = {}
        for role, result in results.items():
            recalls = [
                c["recall"]
                for c in result.details["classification"].per_class.values()
                if c["support"]
            ]
            balanced[role] = round(sum(recalls) / len(recalls), 4)
        per_task[task] = {
            "rows": report.data["rows"],
            "zero_shot": balanced["baseline"],
            "tuned": balanced["target"],
        }
        print(
            f"| {task} | {report.data['rows']} | {balanced['baseline']:.3f} | {balanced['target']:.3f} |"
        )
    save("legalbench", {"train_wall_seconds": round(train_seconds, 1), "tasks": per_task})


if __name__ == "__main__":
    main()
