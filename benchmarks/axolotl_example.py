"""One of Axolotl's own example configs, run end to end on the embedded model as a user
coming from Axolotl would: `ft-plugin train CONFIG`, then `ft-plugin eval`.

    python benchmarks/axolotl_example.py [--rows 1000] [--eval-samples 40]

The config is `examples/llama-3/lora-1b.yml` of Axolotl 0.21.0 (vendored in
tests/axolotl_examples/), with two lines changed and everything else as its authors
wrote it (LoRA r 16 on all seven projections, packed 2,048-token bins, 2 x 2 per step,
one epoch, cosine schedule with warmup_ratio 0.1, evals_per_epoch 4, val_set_size 0.1,
adamw_8bit, bf16: auto, flash_attention_2, the loss watchdog):

- `base_model:` the embedded SmolLM2-135M-Instruct;
- `datasets[0].path:` an `alpaca` file built from PubMedQA's labelled rows
  (../shared/data/pubmedqa): instruction = the question, output = the abstract's
  conclusion (LONG_ANSWER), the first ``--rows`` PMIDs in the file's order.

The eval scores the run's own held-out split (val_set_size 0.1): perplexity on every
held-out row and ROUGE-L on a seeded sample, base (adapter disabled) vs tuned, with
paired bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EMBEDDED, REPO, require_shared, save  # noqa: E402

CONFIG = REPO / "tests" / "axolotl_examples" / "llama-3" / "lora-1b.yml"
WORK = REPO / "runs" / "bench-axolotl-example"


def alpaca_rows(source: Path, rows: int) -> list[dict[str, str]]:
    data = json.loads((source / "ori_pqal.json").read_text())
    return [{"instruction": r["QUESTION"], "input": "", "output": r["LONG_ANSWER"]}
            for r in list(data.values())[:rows]]  # fmt: skip


def swapped_config(data_file: Path) -> tuple[str, list[str]]:
    """The config's text with only the base model and the dataset path lines changed."""
    text, changed = CONFIG.read_text(), []
    for old, new in (("base_model: NousResearch/Llama-3.2-1B", f"base_model: {EMBEDDED}"),
                     ("  - path: teknium/GPT4-LLM-Cleaned", f"  - path: {data_file}")):  # fmt: skip
        if text.count(old) != 1:
            raise SystemExit(f"{CONFIG}: expected the line {old!r} once; the vendored file changed")
        text = text.replace(old, new)
        changed.append(f"{old.strip()} -> {new.strip()}".replace(f"{REPO}/", ""))
    return text, changed


def run(command: list[str], log: Path) -> float:
    """Run one ft-plugin command in WORK (the config's relative output_dir lands there)."""
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=WORK, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--eval-samples", type=int, default=40)
    parser.add_argument("--conditions", help="what else ran on the machine, for the table")
    args = parser.parse_args()
    source = require_shared("pubmedqa")
    WORK.mkdir(parents=True, exist_ok=True)
    data_file = WORK / "pubmedqa-alpaca.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in alpaca_rows(source, args.rows)))
    text, changed = swapped_config(data_file)
    config = WORK / "lora-1b.yml"
    config.write_text(text)
    ft = str(Path(sys.executable).with_name("ft-plugin"))
    run_dir = WORK / "outputs" / "lora-out"
    train_wall = run([ft, "train", str(config)], WORK / "train.log")
    eval_dir = WORK / "eval"
    eval_wall = run([ft, "eval", str(run_dir), "--baseline", "--metrics", "perplexity,rougeL",
                     "--max-samples", str(args.eval_samples), "--max-new-tokens", "96",
                     "--output", str(eval_dir)], WORK / "eval.log")  # fmt: skip
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((eval_dir / "report.json").read_text())
    save("axolotl_example", {
        "config": str(CONFIG.relative_to(REPO)), "changed": changed, "data_rows": args.rows,
        "train_wall_seconds": train_wall, "eval_wall_seconds": eval_wall,
        "train": {k: metrics.get(k) for k in ("steps", "train_rows", "eval_rows", "train_tokens",
                                              "train_loss", "eval_loss", "eval_perplexity",
                                              "tokens_per_second", "peak_memory_mb", "packing")},
        "eval_rows": report["data"]["rows"], "base": report["models"]["baseline"],
        "tuned": report["models"]["target"], "intervals": report["intervals"],
        **({"conditions": args.conditions} if args.conditions else {}),
    })  # fmt: skip


if __name__ == "__main__":
    main()
