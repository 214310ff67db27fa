"""DPO on real data, as a user runs it: SFT, pairs from the SFT model's own answers, DPO from
the SFT adapter, then `ft-plugin eval` of the DPO run against the SFT adapter.

    python benchmarks/dpo_quality.py [--sft-rows 400] [--pair-rows 160] [--held-out 40]

Rows: ``../shared/data/cmedical/internal_medicine.csv`` (GB18030, a question's duplicates
dropped), split once with a seed into SFT rows, pair rows (both from the training side)
and held-out rows, which no step trains on. The commands, each run as a user types it:

1. ``ft-plugin train`` the medical template's LoRA recipe on the SFT rows;
2. ``ft-plugin data preferences --rejected-from`` the SFT run, on the pair rows and on the
   held-out rows: the doctor's answer chosen, the SFT model's greedy answer rejected;
3. ``ft-plugin train`` with ``rl: dpo``, ``lora_model_dir`` the SFT run, the training
   pairs as data and the held-out pairs as ``test_datasets``;
4. ``ft-plugin eval`` of the DPO run: on the held-out pairs, reward accuracy and margin,
   pair accuracy and the chosen answers' perplexity, and ROUGE-L / chrF of greedy answers
   to the held-out questions against the doctors' answers, each against the SFT adapter
   (where the DPO run started) with paired-bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EMBEDDED, REPO, require_shared, save  # noqa: E402

WORK = Path(os.environ.get("BENCH_DPO_WORK", REPO / "runs" / "bench-dpo-quality"))
FT = str(Path(sys.executable).parent / "ft-plugin")


def split_rows(sft: int, pairs: int, held_out: int, seed: int = 0) -> dict[str, Path]:
    from ft_plugin.data.reading import read_rows

    source = require_shared("cmedical") / "internal_medicine.csv"
    rows, seen = [], set()
    for row in read_rows(str(source)):
        if row["ask"] and row["answer"] and row["ask"] not in seen:
            seen.add(row["ask"])
            rows.append({"instruction": row["ask"], "output": row["answer"]})
    random.Random(seed).shuffle(rows)
    parts = {"held_out": rows[:held_out], "pairs": rows[held_out : held_out + pairs],
             "sft": rows[held_out + pairs : held_out + pairs + sft]}  # fmt: skip
    WORK.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, part in parts.items():
        out[name] = WORK / f"{name}.jsonl"
        out[name].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part))
    return out


def run_command(*args: str) -> float:
    """One command as a user types it; its wall seconds."""
    started = time.perf_counter()
    print("$ ft-plugin " + " ".join(args), flush=True)
    subprocess.run([FT, *args], check=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft-rows", type=int, default=400)
    parser.add_argument("--pair-rows", type=int, default=160)
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--sft-steps", type=int, default=60)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--reuse", action="store_true",
                        help="skip a step whose output is there (an interrupted run goes on)")  # fmt: skip
    args = parser.parse_args()
    files = split_rows(args.sft_rows, args.pair_rows, args.held_out)
    sft_run, dpo_run = WORK / "sft", WORK / "dpo"

    def run(marker: Path, *command: str) -> float | str:
        return "reused" if args.reuse and marker.is_file() else run_command(*command)

    seconds = {"sft": run(sft_run / "metrics.json", "train", "medical-lora", "--output-dir", str(sft_run),
                          "--set", f"datasets.0.path={files['sft']}", "--set", "val_set_size=0",
                          "--set", f"max_steps={args.sft_steps}",
                          # the medical recipe's 384 tokens drop 3 in 4 of these rows
                          "--set", "sequence_len=640")}  # fmt: skip
    for name in ("pairs", "held_out"):
        seconds[f"pairs_{name}"] = run(
            WORK / f"{name}-pairs.report.json", "data", "preferences", "--from", str(files[name]), "--type", "medical",
            "--rejected-from", str(sft_run), "--max-new-tokens", str(args.max_new_tokens),
            "--generation-batch-size", "8", "--output", str(WORK / f"{name}-pairs.jsonl"))  # fmt: skip
    recipe = WORK / "dpo.yaml"
    recipe.write_text(f"""base_model: {EMBEDDED}
adapter: lora
lora_model_dir: {sft_run}
lora_r: 16
lora_alpha: 32
lora_target_linear: true
rl: dpo
rl_beta: 0.1
datasets:
  - path: {WORK / "pairs-pairs.jsonl"}
    type: chat_template.default
test_datasets:
  - path: {WORK / "held_out-pairs.jsonl"}
    type: chat_template.default
sequence_len: 640
micro_batch_size: 4
num_epochs: 1
learning_rate: 5.0e-5
logging_steps: 1
save_strategy: "no"
report_to: none
""")
    seconds["dpo"] = run(
        dpo_run / "metrics.json", "train", str(recipe), "--output-dir", str(dpo_run)
    )
    seconds["eval"] = run(dpo_run / "eval" / "report.json", "eval", str(dpo_run), "--metrics",
                          "pair_accuracy,rougeL,chrf", "--max-new-tokens", str(args.max_new_tokens))  # fmt: skip
    report = json.loads((dpo_run / "eval" / "report.json").read_text())
    reports = {name: json.loads((WORK / f"{name}-pairs.report.json").read_text())
               for name in ("pairs", "held_out")}  # fmt: skip
    save("dpo_quality", {
        "settings": vars(args), "seconds": seconds, "pairs": reports,
        "sft": json.loads((sft_run / "metrics.json").read_text()),
        "dpo": json.loads((dpo_run / "metrics.json").read_text()),
        "eval": {k: report[k] for k in ("models", "delta", "intervals", "distinguishable", "data")},
    })  # fmt: skip


if __name__ == "__main__":
    main()
