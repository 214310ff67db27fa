"""TFNS (financial news sentiment): zero-shot vs finance-sentiment-lora on the embedded model.

    python benchmarks/quality_tfns.py [--max-steps 360] [--eval-rows 0] [--reuse]

Trains `finance-sentiment-lora` on `../shared/data/tfns/train.csv` (rows converted by the
finance-sentiment template: 0 = bearish, 1 = bullish, 2 = neutral), then evaluates the
tuned model and the base model (adapter disabled) on `valid.csv` with label
log-likelihood scoring: accuracy and macro-F1. Reads ../shared/data in place.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, require_shared, save, train_or_reuse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-steps", type=int, default=360)
    parser.add_argument("--eval-rows", type=int, default=0, help="0: the whole valid.csv")
    parser.add_argument("--output-dir", default=str(REPO / "runs" / "bench-tfns"))
    parser.add_argument("--reuse", action="store_true", help="evaluate a finished run there")
    args = parser.parse_args()
    data = require_shared("tfns")

    from ft_plugin.config import load_recipe
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation

    overrides = {
        "datasets.0.path": str(data / "train.csv"), "max_steps": args.max_steps, "val_set_size": 0,
        "report_to": "none", "logging_steps": 25, "save_steps": 1000,
    }  # fmt: skip
    loaded = load_recipe("finance-sentiment-lora", overrides)
    run_dir, train_metrics = train_or_reuse(loaded, Path(args.output_dir), reuse=args.reuse)
    settings = EvalSettings(
        data=str(data / "valid.csv"), template="finance-sentiment", baseline=True,
        metrics=["accuracy", "macro_f1"], max_samples=args.eval_rows or 10**9,
    )  # fmt: skip
    started = time.perf_counter()
    report, _, _, _ = run_evaluation(str(run_dir), settings)
    eval_seconds = time.perf_counter() - started
    models = report.models
    print(
        f"| zero-shot | {models['baseline']['accuracy']:.3f} | {models['baseline']['macro_f1']:.3f} |"
    )
    print(
        f"| finance-sentiment-lora | {models['target']['accuracy']:.3f} | {models['target']['macro_f1']:.3f} |"
    )
    save("tfns", {
        "train": train_metrics, "train_wall_seconds": train_metrics["wall_seconds"],
        "eval_wall_seconds": round(eval_seconds, 1), "eval_rows": report.data["rows"],
        "zero_shot": models["baseline"], "tuned": models["target"],
        "intervals": report.intervals,  # paired bootstrap 95%: target, baseline, delta
    })  # fmt: skip


if __name__ == "__main__":
    main()
