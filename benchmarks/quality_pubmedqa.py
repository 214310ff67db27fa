"""PubMedQA (PQA-L): zero-shot vs medical-pubmedqa-style LoRA on the embedded model.

    python benchmarks/quality_pubmedqa.py [--max-steps 60] [--reuse]

Trains `medical-lora` through the `medical-pubmedqa` template on the 500 labelled PMIDs
outside the standard test split (sequence_len 768, so that no abstract is cut; packed,
2 x 768 tokens per step: 60 steps see about a quarter of the training rows, a CPU
budget of about 20 minutes), then scores yes/no/maybe by label log-likelihood on the
500 test PMIDs (`test_ground_truth.json`): accuracy and macro-F1, base model (adapter
disabled) vs tuned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, pubmedqa_records, require_shared, save, train_or_reuse  # noqa: E402


def write_splits(source: Path, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / "train.jsonl", folder / "test.jsonl")
    with paths[0].open("w") as train, paths[1].open("w") as test:
        for _, record, in_test in pubmedqa_records(source):
            (test if in_test else train).write(json.dumps(record) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--reuse", action="store_true", help="evaluate a finished run")
    parser.add_argument("--eval-rows", type=int, default=0)
    args = parser.parse_args()
    source = require_shared("pubmedqa")
    from ft_plugin.config import load_recipe
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation

    train_file, test_file = write_splits(source, REPO / "runs" / "bench-pubmedqa-data")
    overrides = {"datasets": [{"path": str(train_file), "type": "medical-pubmedqa"}], "max_steps": args.max_steps,
                 "sequence_len": 768, "val_set_size": 0, "report_to": "none", "save_steps": 100000,
                 "logging_steps": 20}  # fmt: skip
    loaded = load_recipe("medical-lora", overrides)
    run_dir, train_metrics = train_or_reuse(
        loaded, REPO / "runs" / "bench-pubmedqa", reuse=args.reuse
    )
    settings = EvalSettings(data=str(test_file), template="medical-pubmedqa", baseline=True,
                            metrics=["accuracy", "macro_f1"], max_samples=args.eval_rows or 10**9, sequence_len=768)  # fmt: skip
    started = time.perf_counter()
    report, _, _, _ = run_evaluation(str(run_dir), settings)
    m = report.models
    print(f"| zero-shot | {m['baseline']['accuracy']:.3f} | {m['baseline']['macro_f1']:.3f} |")
    print(f"| tuned | {m['target']['accuracy']:.3f} | {m['target']['macro_f1']:.3f} |")
    save("pubmedqa", {"train": train_metrics, "train_wall_seconds": train_metrics["wall_seconds"],
                      "eval_wall_seconds": round(time.perf_counter() - started, 1),
                      "eval_rows": report.data["rows"], "zero_shot": m["baseline"], "tuned": m["target"],
                      "intervals": report.intervals})  # fmt: skip


if __name__ == "__main__":
    main()
