"""DPO speed, memory and held-out reward accuracy: plain TRL (its documented DPOTrainer +
LoRA) vs `ft-plugin train` with `rl: dpo`, on the same pairs and settings, back to back.

    python benchmarks/dpo_speed.py [--pairs 160] [--held-out 40] [--reps 1]

Pairs: a seeded sample of the published Chinese medical QA rows
(``../shared/data/cmedical/internal_medicine.csv``, GB18030, duplicates of a question
dropped): the doctor's answer to the patient's question is chosen, the answer the same
file gives to another, seeded question is rejected (an answer that does not fit; the
real-data quality run uses the model's own answers instead). Both sides: the embedded
SmolLM2-135M-Instruct, LoRA r=16 / alpha 32 / dropout 0.05 on every linear layer, beta
0.1, learning rate 5e-5, micro-batch 4, one epoch, `max_length` 512, no evaluation during
training. Each side trains in its own process; wall time is the whole process (imports,
loading, data, training, saving) and peak RSS the child's own (``wait4``). Each adapter is
then scored in a fresh process on the held-out pairs with ft-plugin's pair scorer (the one
`ft-plugin eval` uses, tested equal to TRL's own evaluation): reward accuracy and margin
against the base model.

Baseline: TRL's documented recipe (``DPOTrainer(model, args=DPOConfig(...),
peft_config=LoraConfig(...))``, default ``DPOConfig``: gradient checkpointing on, bf16
where supported, dropout off) apart from the shared hyper-parameters and ``use_cpu``.
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

WORK = Path(os.environ.get("BENCH_DPO_WORK", REPO / "runs" / "bench-dpo"))
SETTINGS = {"learning_rate": 5e-5, "beta": 0.1, "micro_batch_size": 4, "sequence_len": 512,
            "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "num_epochs": 1}  # fmt: skip
SYSTEM = "You are a careful medical assistant."


def build_pairs(count: int, held_out: int, seed: int = 0) -> tuple[Path, Path]:
    """(train, held-out) pair files in the chat_template.default shape."""
    from ft_plugin.data.reading import read_rows

    source = require_shared("cmedical") / "internal_medicine.csv"
    rows, seen = [], set()
    for row in read_rows(str(source)):
        if row["ask"] and row["answer"] and row["ask"] not in seen:
            seen.add(row["ask"])
            rows.append(row)
    rng = random.Random(seed)
    picked = rng.sample(rows, count + held_out)
    others = picked[1:] + picked[:1]  # each question gets another question's answer
    pairs = [{"messages": [{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": row["ask"]}],
              "chosen": {"role": "assistant", "content": row["answer"]},
              "rejected": {"role": "assistant", "content": other["answer"]}}
             for row, other in zip(picked, others, strict=True)]  # fmt: skip
    WORK.mkdir(parents=True, exist_ok=True)
    train, test = WORK / "pairs-train.jsonl", WORK / "pairs-held-out.jsonl"
    for path, part in ((train, pairs[:count]), (test, pairs[count:])):
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in part))
    return train, test


def recipe_text(train: Path) -> str:
    s = SETTINGS
    return f"""base_model: {EMBEDDED}
adapter: lora
lora_r: {s["lora_r"]}
lora_alpha: {s["lora_alpha"]}
lora_dropout: {s["lora_dropout"]}
lora_target_linear: true
rl: dpo
rl_beta: {s["beta"]}
datasets:
  - path: {train}
    type: chat_template.default
val_set_size: 0
sequence_len: {s["sequence_len"]}
micro_batch_size: {s["micro_batch_size"]}
gradient_accumulation_steps: 1
num_epochs: {s["num_epochs"]}
learning_rate: {s["learning_rate"]}
lr_scheduler: linear
warmup_steps: 0
logging_steps: 1
save_strategy: "no"
report_to: none
seed: 42
"""


def train_trl(train: Path, out: Path) -> dict:
    """TRL's documented DPOTrainer + LoRA, on the pairs as TRL reads conversational rows."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from ft_plugin.models import resolve_base_model

    path = resolve_base_model(EMBEDDED).path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    data = Dataset.from_list([{"prompt": r["messages"], "chosen": [r["chosen"]],
                               "rejected": [r["rejected"]]} for r in rows])  # fmt: skip
    s = SETTINGS
    args = DPOConfig(
        output_dir=str(out), num_train_epochs=s["num_epochs"], beta=s["beta"],
        per_device_train_batch_size=s["micro_batch_size"], learning_rate=s["learning_rate"],
        max_length=s["sequence_len"], logging_steps=1, report_to=[], save_strategy="no",
        use_cpu=not torch.cuda.is_available(), seed=42,
    )  # fmt: skip
    peft_config = LoraConfig(r=s["lora_r"], lora_alpha=s["lora_alpha"],
                             lora_dropout=s["lora_dropout"], target_modules="all-linear",
                             task_type="CAUSAL_LM")  # fmt: skip
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft_config)  # fmt: skip
    output = trainer.train()
    trainer.save_model(str(out))
    return {"steps": trainer.state.global_step, "train_loss": round(output.training_loss, 4),
            "train_seconds": round(output.metrics["train_runtime"], 2)}  # fmt: skip


def train_ours(train: Path, out: Path) -> dict:
    """`ft-plugin train RECIPE` exactly as a user runs it."""
    recipe = WORK / "dpo.yaml"
    recipe.write_text(recipe_text(train))
    command = [str(Path(sys.executable).parent / "ft-plugin"), "train", str(recipe),
               "--output-dir", str(out)]  # fmt: skip
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    metrics = json.loads((out / "metrics.json").read_text())
    return {"steps": metrics["steps"], "train_loss": metrics["train_loss"],
            "train_seconds": metrics["wall_seconds"], "rewards": metrics.get("rewards")}  # fmt: skip


def score(held_out: Path, adapter: Path) -> dict:
    """Reward accuracy and margin on the held-out pairs, against the base (the adapter
    disabled), with ft-plugin's pair scorer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data.preferences import PreferenceRenderer, preference_rows
    from ft_plugin.evaluate.preference import preference_result, score_pairs
    from ft_plugin.models import resolve_base_model

    path = resolve_base_model(EMBEDDED).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    spec = DatasetSection(path=str(held_out), type="chat_template.default")
    rows = [json.loads(line) for line in held_out.read_text().splitlines()]
    pairs, _ = preference_rows(rows, spec, PreferenceRenderer(spec, tokenizer, None))
    limit = SETTINGS["sequence_len"]
    tuned = score_pairs(model, tokenizer, pairs, limit)
    with model.disable_adapter():
        start = score_pairs(model, tokenizer, pairs, limit)
    result = preference_result(tuned, start, SETTINGS["beta"])
    return {"pairs": len(pairs), **{k: round(v.value(), 4) for k, v in result["statistics"].items()},
            "per_row": result["rows"]}  # fmt: skip


def child(argv: list[str]) -> tuple[dict, float, float]:
    """This script in a fresh process: (its JSON line, wall seconds, peak RSS in MB)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, *argv], cwd=REPO, stdout=stdout,
                                stderr=stderr)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        stdout.seek(0), stderr.seek(0)
        lines = [line for line in stdout.read().splitlines() if line.startswith("{")]
        if os.waitstatus_to_exitcode(status) != 0 or not lines:
            raise SystemExit(f"{argv} failed:\n{stderr.read()[-3000:]}")
    return json.loads(lines[-1]), wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=160)
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--one", choices=["trl", "ft-plugin", "score"])
    parser.add_argument("--data")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.one:
        run = {"trl": train_trl, "ft-plugin": train_ours, "score": score}[args.one]
        print(json.dumps(run(Path(args.data), Path(args.out))))
        return
    train, held_out = build_pairs(args.pairs, args.held_out)
    sides: dict[str, list[dict]] = {"trl": [], "ft-plugin": []}
    for rep in range(args.reps):
        for side in sides:
            out = WORK / f"{side}-{rep}"
            result, wall, rss = child(["--one", side, "--data", str(train), "--out", str(out)])
            quality, _, _ = child(["--one", "score", "--data", str(held_out), "--out", str(out)])
            sides[side].append({**result, "wall_seconds_process": round(wall, 1),
                                "peak_rss_mb": round(rss), "held_out": quality})  # fmt: skip
            print(
                side, rep, json.dumps({k: v for k, v in sides[side][-1].items() if k != "held_out"})
            )
    settings = {**SETTINGS, "pairs": args.pairs, "held_out": args.held_out, "reps": args.reps}
    save("dpo_speed", {"settings": settings, "sides": sides})


if __name__ == "__main__":
    main()
