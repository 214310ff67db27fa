"""Speed, memory and adapter quality: plain TRL (its documented SFTTrainer + LoRA) vs ft-plugin.

    python benchmarks/speed.py [--case user|builtin|all] [--reps 1] [--eval-rows 300]

Each case trains on the same 240 TFNS headlines (a seeded sample of
``../shared/data/tfns/train.csv``; the builtin finance-sentiment sample when the shared
data is absent), one epoch, LoRA r=16 / alpha 32 / dropout 0.05 on every linear layer,
learning rate 2e-4, on the embedded SmolLM2-135M-Instruct:

- ``user``: what people write: a recipe that extends ``finance-sentiment-lora`` and sets
  ``micro_batch_size: 8``, ``sequence_len: 512``, ``num_epochs: 1``; TRL with batch 8 and
  ``max_length`` 512.
- ``builtin``: ``finance-sentiment-lora`` as shipped (its batch shape and sequence_len);
  TRL with the same micro-batch, accumulation and ``max_length``.
- ``medical``: ``medical-lora`` as shipped on its builtin medical rows (longer answers:
  most tokens carry loss); both sides train on the recipe's seeded 90% split and are
  scored by perplexity on the held-out 10% (ft-plugin's own run also evaluates it).

The TFNS cases train on all 240 rows on both sides (``val_set_size: 0`` on ours).
Each training runs in its own process, the two back to back (alternating over
``--reps``); the wall time is the whole process (imports, loading, data, training,
saving) measured by this script, and the peak RSS is the child's own (``wait4``). Then
each adapter is scored in a fresh process on ``--eval-rows`` held-out rows of
``valid.csv`` (seeded sample) by label log-likelihood: accuracy and macro-F1.

Baseline: TRL's documented LoRA recipe (``SFTTrainer(peft_config=LoraConfig(...))``,
default ``SFTConfig``: gradient checkpointing on, bf16 autocast, padded batches) apart
from the shared hyper-parameters and ``use_cpu`` (required on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, SHARED_DATA, machine, quality_intervals, save  # noqa: E402

WORK = REPO / "runs" / "bench-speed"
LEARNING_RATE = 2e-4
TRAIN_ROWS = 240
CASES = {
    "user": {"recipe": "finance-sentiment-lora",
             "overrides": ["micro_batch_size=8", "sequence_len=512", "num_epochs=1"]},
    "builtin": {"recipe": "finance-sentiment-lora", "overrides": []},
    "medical": {"recipe": "medical-lora", "overrides": []},
}  # fmt: skip


def tfns_rows(split: str, count: int, seed: int) -> list[dict]:
    """A seeded sample of TFNS rows (``text``, ``label``), or of the builtin sample."""
    from ft_plugin.data.reading import read_rows

    path = SHARED_DATA / "tfns" / f"{split}.csv"
    rows = read_rows(str(path) if path.is_file() else "builtin:finance-sentiment")
    return random.Random(seed).sample(rows, min(count, len(rows)))


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def chat_rows(path: Path) -> list[dict]:
    """The rows as the finance-sentiment template turns them into prompt/completion pairs."""
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data.formats import convert_rows
    from ft_plugin.data.reading import read_rows

    spec = DatasetSection(path=str(path), type="finance-sentiment")
    return convert_rows(read_rows(str(path)), spec).examples


def recipe_overrides(case: str, data: Path) -> list[str]:
    """The case's ``--set KEY=VALUE`` strings: given to ``ft-plugin train`` as they are, and
    read with ``parse_set_options`` where the benchmark loads the recipe itself."""
    if case == "medical":  # the recipe's own rows and held-out split
        return [*CASES[case]["overrides"], f"learning_rate={LEARNING_RATE}"]
    return [*CASES[case]["overrides"], f"datasets.0.path={data}", "val_set_size=0",
            f"learning_rate={LEARNING_RATE}"]  # fmt: skip


def training_rows(case: str, data: Path, tokenizer: object) -> tuple[list[dict], list[dict]]:
    """(train, held-out) prompt/completion rows, exactly as ft-plugin's data stage makes them."""
    from ft_plugin.config import load_recipe, parse_set_options
    from ft_plugin.data import build_training_data

    if case != "medical":
        return chat_rows(data), []
    recipe = load_recipe(
        CASES[case]["recipe"], parse_set_options(recipe_overrides(case, data))
    ).recipe
    built = build_training_data(recipe, tokenizer)
    return built.train.to_list(), built.eval.to_list() if built.eval is not None else []


def train_trl(case: str, data: Path, out: Path) -> dict:
    """TRL's documented SFTTrainer + LoRA on the case's batch shape."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from ft_plugin.config import load_recipe, parse_set_options
    from ft_plugin.models import resolve_base_model

    recipe = load_recipe(
        CASES[case]["recipe"], parse_set_options(recipe_overrides(case, data))
    ).recipe
    path = resolve_base_model(recipe.base_model).path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_rows, _ = training_rows(case, data, tokenizer)
    args = SFTConfig(
        output_dir=str(out), num_train_epochs=recipe.num_epochs,
        per_device_train_batch_size=recipe.micro_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        learning_rate=LEARNING_RATE, max_length=recipe.sequence_len, logging_steps=1,
        report_to=[], save_strategy="no", use_cpu=not torch.cuda.is_available(), seed=42,
    )  # fmt: skip
    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                         processing_class=tokenizer, peft_config=peft_config)  # fmt: skip
    output = trainer.train()
    trainer.save_model(str(out))
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    tokens = int(max(float(h.get("num_tokens", 0)) for h in history))  # TRL's non-padding count
    return {"steps": trainer.state.global_step, "train_loss": round(output.training_loss, 4),
            "train_rows": len(trainer.train_dataset), "train_tokens": tokens,
            "train_seconds": round(output.metrics["train_runtime"], 2), "loss_curve": losses}  # fmt: skip


def train_ours(case: str, data: Path, out: Path) -> dict:
    """`ft-plugin train` exactly as a user runs it."""
    command = [str(Path(sys.executable).parent / "ft-plugin"), "train", CASES[case]["recipe"],
               "--output-dir", str(out)]  # fmt: skip
    for item in recipe_overrides(case, data):
        command += ["--set", item]
    subprocess.run(command, check=True, cwd=REPO)
    metrics = json.loads((out / "metrics.json").read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    metrics["loss_curve"] = [h["loss"] for h in state["log_history"] if "loss" in h]
    metrics["train_seconds"] = metrics["wall_seconds"]
    return metrics


def score(case: str, adapter: Path, rows_path: Path) -> dict:
    """TFNS: accuracy and macro-F1 on held-out rows by label log-likelihood; medical:
    perplexity of the answers on the recipe's held-out split."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ft_plugin.evaluate.classification import classification_metrics
    from ft_plugin.evaluate.perplexity import corpus_perplexity
    from ft_plugin.evaluate.scoring import predict_labels
    from ft_plugin.models import resolve_base_model

    base_path = resolve_base_model("embedded:smollm2-135m-instruct").path
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    if case == "medical":
        _, held_out = training_rows(case, rows_path, tokenizer)
        with torch.inference_mode():
            result = corpus_perplexity(model, tokenizer, held_out, sequence_len=256)
        return {"perplexity": round(result.perplexity, 4), "rows": len(held_out),
                "per_row": {"nll_tokens": result.rows}}  # fmt: skip
    examples = chat_rows(rows_path)
    labels = ["bearish", "bullish", "neutral"]
    predicted = predict_labels(model, tokenizer, examples, labels)
    truth = [e["completion"][0]["content"] for e in examples]
    scores = classification_metrics(truth, predicted, labels)
    return {"accuracy": round(scores.accuracy, 4), "macro_f1": round(scores.macro_f1, 4),
            "rows": len(examples), "per_row": {"truth": truth, "predicted": predicted, "labels": labels}}  # fmt: skip


def child(argv: list[str]) -> tuple[dict, float, float]:
    """Run this script in a fresh process: (its JSON line, wall seconds, peak RSS in MB).

    The peak RSS is the child's own and its reaped descendants' (``wait4``), so a
    side that trains in a grandchild process (``ft-plugin train``) is measured too.
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, __file__, *argv], cwd=REPO, stdout=stdout, stderr=stderr
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        lines = [line for line in stdout.read().splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{argv} failed:\n{stderr.read()[-3000:]}")
    return json.loads(lines[-1]), wall, usage.ru_maxrss / 1024


def matmul_peak(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    """Best observed GFLOP/s of a square matmul in this dtype (the machine's practical peak)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return round(best, 1)


def flops_per_token(mean_row_tokens: float) -> float:
    """LoRA-aware model FLOPs per trained token: forward 2N + input gradient 2N (frozen N
    needs no weight gradient), plus attention over the token's own row (12·L·ℓ·d)."""
    from transformers import AutoConfig

    from ft_plugin.models import resolve_base_model

    config = AutoConfig.from_pretrained(resolve_base_model("embedded:smollm2-135m-instruct").path)
    params = 134_515_008  # SmolLM2-135M weights, the tied head counted once
    return 4 * params + 12 * config.num_hidden_layers * mean_row_tokens * config.hidden_size


def peak_share(run: dict, bf16_peak_gflops: float) -> float:
    """Training FLOP/s over the bf16 matmul peak, counting only real (non-padding) tokens."""
    per_token = flops_per_token(run["train_tokens"] / max(1, run["train_rows"]))
    return round(run["train_tokens"] * per_token / run["train_seconds"] / 1e9 / bf16_peak_gflops, 4)


def run_case(case: str, reps: int, eval_rows: int) -> dict:
    data = write_rows(WORK / "tfns-train-240.jsonl", tfns_rows("train", TRAIN_ROWS, seed=0))
    held_out = write_rows(WORK / "tfns-valid.jsonl", tfns_rows("valid", eval_rows, seed=1))
    sides: dict[str, list[dict]] = {"trl": [], "ft-plugin": []}
    for rep in range(reps):
        for side in sides:
            out = WORK / f"{case}-{side}-{rep}"
            result, wall, rss = child(
                ["--one", side, "--case", case, "--data", str(data), "--out", str(out)]
            )
            quality, _, _ = child(
                ["--one", "score", "--case", case, "--data", str(held_out), "--out", str(out)]
            )
            sides[side].append({**result, "wall_seconds_process": round(wall, 1), "peak_rss_mb": round(rss),
                                "held_out": quality})  # fmt: skip
            print(f"{case} rep {rep + 1} {side}: {wall:.0f} s, {rss:.0f} MB, {quality}", flush=True)
    return summarise(case, sides)


def summarise(case: str, sides: dict[str, list[dict]]) -> dict:
    """Medians of the ratios, and the paired 95% intervals of held-out quality (first rep)."""
    ratios = [
        t["wall_seconds_process"] / o["wall_seconds_process"]
        for t, o in zip(sides["trl"], sides["ft-plugin"], strict=True)
    ]
    memory = [o["peak_rss_mb"] / t["peak_rss_mb"] for t, o in zip(sides["trl"], sides["ft-plugin"], strict=True)]  # fmt: skip
    return {"case": case, "recipe": CASES[case]["recipe"], "overrides": CASES[case]["overrides"], "runs": sides,
            "speedup_wall": round(statistics.median(ratios), 3), "memory_ratio": round(statistics.median(memory), 3),
            "quality_intervals": quality_intervals(sides["ft-plugin"][0]["held_out"], sides["trl"][0]["held_out"])}  # fmt: skip


def rescore(reps: int, eval_rows: int) -> dict:
    """Score the adapters a previous full run left in WORK again (same held-out rows),
    recording per-row outcomes and intervals; timings are kept from that run."""
    previous = json.loads((RESULTS / "speed.json").read_text())
    held_out = write_rows(WORK / "tfns-valid.jsonl", tfns_rows("valid", eval_rows, seed=1))
    for case, result in previous["cases"].items():
        for side, runs in result["runs"].items():
            for rep, run in enumerate(runs[:reps]):
                out = WORK / f"{case}-{side}-{rep}"
                run["held_out"], _, _ = child(["--one", "score", "--case", case, "--data", str(held_out), "--out", str(out)])  # fmt: skip
                print(
                    f"{case} rep {rep + 1} {side}: {run['held_out']['rows']} rows rescored",
                    flush=True,
                )
        result["quality_intervals"] = quality_intervals(result["runs"]["ft-plugin"][0]["held_out"],
                                                        result["runs"]["trl"][0]["held_out"])  # fmt: skip
    previous["rescored"] = {"command": " ".join(["python", *sys.argv]), "machine": machine()}
    return previous


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--eval-rows", type=int, default=300)
    parser.add_argument("--rescore", action="store_true",
                        help="score the adapters of the last full run again (per-row outcomes, intervals)")  # fmt: skip
    parser.add_argument("--one", choices=["trl", "ft-plugin", "score"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        runner = {"trl": lambda: train_trl(args.case, Path(args.data), Path(args.out)),
                  "ft-plugin": lambda: train_ours(args.case, Path(args.data), Path(args.out)),
                  "score": lambda: score(args.case, Path(args.out), Path(args.data))}[args.one]  # fmt: skip
        print(json.dumps(runner()))
        return
    if args.rescore:
        save("speed", rescore(args.reps, args.eval_rows))
        return
    import shutil

    shutil.rmtree(WORK, ignore_errors=True)
    cases = list(CASES) if args.case == "all" else [args.case]
    results = {case: run_case(case, args.reps, args.eval_rows) for case in cases}
    peaks = {"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16")}
    for result in results.values():
        for runs in result["runs"].values():
            for run in runs:
                run["bf16_peak_share"] = peak_share(run, peaks["bf16"])
    print(
        json.dumps(
            {c: {k: r[k] for k in ("speedup_wall", "memory_ratio")} for c, r in results.items()}
        )
    )
    save("speed", {"reps": args.reps, "eval_rows": args.eval_rows, "cases": results,
                   "matmul_peak_gflops": peaks})  # fmt: skip


if __name__ == "__main__":
    main()
