"""Speed and memory: plain TRL (its documented SFTTrainer + LoRA recipe) vs ft-plugin.

    python benchmarks/speed.py [--steps 30] [--reps 3]

Both train the embedded SmolLM2-135M-Instruct with LoRA r=16 on every linear layer,
the same rows (financial headlines as chat prompt/completion; TFNS when
../shared/data is present, else the builtin finance-sentiment sample), the same
learning rate, sequence length, step count and about the same tokens per optimizer
step. Each configuration runs in its own process (peak RSS is per process), the two
alternate, and the report gives the median ratio of effective tokens per second
(non-padding tokens trained on per second of training) and of peak memory.

Baseline: `SFTConfig` defaults (gradient checkpointing on, bf16, no packing) apart from
the shared hyper-parameters and `use_cpu=True` (required to run on a CPU).
ft-plugin: the same recipe through `ft_plugin.train`, with its measured defaults.
It also measures the machine's matmul peak (fp32, bf16) and reports training FLOP/s as
a share of it (LoRA-aware 4·N per token plus attention 12·L·ctx·d per token).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SHARED_DATA, save  # noqa: E402

SEQUENCE_LEN = 256
LEARNING_RATE = 2e-4


def rows(limit: int = 2000) -> list[dict]:
    """Chat prompt/completion rows from TFNS (or the builtin sample)."""
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data.formats import convert_rows
    from ft_plugin.data.reading import read_rows

    tfns = SHARED_DATA / "tfns" / "train.csv"
    path = str(tfns) if tfns.is_file() else "builtin:finance-sentiment"
    raw = read_rows(path)[:limit]
    return convert_rows(raw, DatasetSection(path=path, type="finance-sentiment")).examples


def run_baseline(steps: int, batch: int, *, model_path: str | None = None, method: str = "lora",
                 sequence_len: int = SEQUENCE_LEN) -> dict:  # fmt: skip
    """What TRL's documentation shows: SFTTrainer + peft LoraConfig, default SFTConfig."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from ft_plugin.models import resolve_base_model

    path = model_path or resolve_base_model("embedded:smollm2-135m-instruct").path
    cuda = torch.cuda.is_available()
    quantization = (
        BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        if method == "qlora"
        else None
    )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if cuda else torch.float32,
                                                 quantization_config=quantization, device_map="cuda" if cuda else None)  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(path)
    args = SFTConfig(
        output_dir=str(REPO / "runs" / "bench-speed-trl"), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=LEARNING_RATE, max_length=sequence_len, logging_steps=1, report_to=[], save_strategy="no",
        use_cpu=not cuda, seed=42,
    )  # fmt: skip
    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows()),
                         processing_class=tokenizer, peft_config=peft_config)  # fmt: skip
    started = time.perf_counter()
    output = trainer.train()
    return _measure(trainer, output, time.perf_counter() - started)


def run_ft_plugin(steps: int, micro_batch: int, accumulation: int, packing: bool, *, model_path: str | None = None,
                  method: str = "lora", sequence_len: int = SEQUENCE_LEN) -> dict:  # fmt: skip
    import tempfile

    from datasets import Dataset

    from ft_plugin.config import load_recipe
    from ft_plugin.data import TrainingData
    from ft_plugin.train import prepare_run

    overrides = [f"max_steps={steps}", f"micro_batch_size={micro_batch}", f"gradient_accumulation_steps={accumulation}",
                 f"sample_packing={str(packing).lower()}", f"sequence_len={sequence_len}", f"learning_rate={LEARNING_RATE}",
                 "val_set_size=0", "report_to=none", "save_steps=100000", "logging_steps=1", "warmup_steps=0"]  # fmt: skip
    if model_path:
        overrides.append(f"base_model={model_path}")
    if method == "qlora":
        overrides += ["adapter=qlora", "load_in_4bit=true"]
    loaded = load_recipe("finance-sentiment-lora", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_run(loaded, tmp + "/run")
        # the same rows as the baseline, in the same order
        prepared.trainer.train_dataset = prepared.trainer._prepare_dataset(
            Dataset.from_list(rows()), prepared.trainer.processing_class, prepared.trainer.args,
            prepared.trainer.args.packing, None, "train",
        )  # fmt: skip
        prepared.data = TrainingData(Dataset.from_list(rows()), None)
        started = time.perf_counter()
        output = prepared.trainer.train()
        return _measure(prepared.trainer, output, time.perf_counter() - started)


def run_baseline_model(model_path: str, steps: int, *, method: str, sequence_len: int) -> dict:
    """GPU shape: 8 padded rows per step, TRL defaults (gradient checkpointing on)."""
    return run_baseline(steps, 8, model_path=model_path, method=method, sequence_len=sequence_len)


def run_ft_plugin_model(model_path: str, steps: int, *, method: str, sequence_len: int) -> dict:
    """GPU shape: ft-plugin's defaults with padding-free packing of the same tokens per step."""
    return run_ft_plugin(
        steps, 1, 1, True, model_path=model_path, method=method, sequence_len=sequence_len
    )


def _measure(trainer, output, seconds: float) -> dict:  # noqa: ANN001
    from ft_plugin.callbacks import peak_memory_mb

    history = trainer.state.log_history
    tokens = int(trainer._total_train_tokens)
    losses = [h["loss"] for h in history if "loss" in h]
    # loss against tokens seen, to compare runs whose steps hold different token counts
    curve = [
        (int(float(h["num_tokens"])), h["loss"])
        for h in history
        if "loss" in h and "num_tokens" in h
    ]
    return {
        "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_second": round(tokens / seconds, 2),
        "peak_memory_mb": round(peak_memory_mb(), 1), "final_loss": losses[-1] if losses else None,
        "mean_loss_last_10": round(statistics.fmean(losses[-10:]), 4) if losses else None,
        "steps": trainer.state.global_step, "loss_by_tokens": curve,
    }  # fmt: skip


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


def training_flops_per_token(context: int) -> float:
    """LoRA-aware: forward 2N + input-gradient 2N (no weight gradients for frozen N), plus attention."""
    from transformers import AutoConfig

    from ft_plugin.models import resolve_base_model

    config = AutoConfig.from_pretrained(resolve_base_model("embedded:smollm2-135m-instruct").path)
    layers, hidden = config.num_hidden_layers, config.hidden_size
    params = 134_515_008  # non-embedding + embedding weights of SmolLM2-135M (tied head)
    return 4 * params + 12 * layers * context * hidden


def child(argv: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, cwd=REPO
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{argv} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--one", choices=["baseline", "ours", "ours-nopack"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    # ~670 tokens per optimizer step on both sides (TFNS rows are ~84 tokens with the template):
    # 8 padded rows vs 3 micro-batches of one packed 256-token row.
    if args.one == "baseline":
        print(json.dumps(run_baseline(args.steps, batch=8)))
        return
    if args.one == "ours":
        print(json.dumps(run_ft_plugin(args.steps, micro_batch=1, accumulation=3, packing=True)))
        return
    if args.one == "ours-nopack":
        print(json.dumps(run_ft_plugin(args.steps, micro_batch=8, accumulation=1, packing=False)))
        return
    runs: dict[str, list[dict]] = {"baseline": [], "ours": [], "ours-nopack": []}
    for rep in range(args.reps):
        for name in runs:
            runs[name].append(child(["--one", name, "--steps", str(args.steps)]))
            print(f"rep {rep + 1} {name}: {runs[name][-1]}", flush=True)
    median = {name: {k: statistics.median(r[k] for r in results) for k in ("tokens_per_second", "peak_memory_mb", "mean_loss_last_10")}
              for name, results in runs.items()}  # fmt: skip
    ratios = {name: {
        "tokens_per_second": round(statistics.median(o["tokens_per_second"] / b["tokens_per_second"] for o, b in zip(runs[name], runs["baseline"], strict=True)), 3),
        "peak_memory": round(statistics.median(o["peak_memory_mb"] / b["peak_memory_mb"] for o, b in zip(runs[name], runs["baseline"], strict=True)), 3),
    } for name in ("ours", "ours-nopack")}  # fmt: skip
    peaks = {"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16")}
    flops = training_flops_per_token(SEQUENCE_LEN)
    utilisation = {
        name: round(median[name]["tokens_per_second"] * flops / 1e9 / peaks["bf16"], 4)
        for name in runs
    }
    print(
        json.dumps(
            {
                "median": median,
                "ratio_vs_baseline": ratios,
                "matmul_peak_gflops": peaks,
                "bf16_peak_share": utilisation,
            },
            indent=2,
        )
    )
    save("speed", {"steps": args.steps, "reps": args.reps, "runs": runs, "median": median, "ratio_vs_baseline": ratios,
                   "matmul_peak_gflops": peaks, "training_flops_per_token": flops, "bf16_peak_share": utilisation})  # fmt: skip


if __name__ == "__main__":
    main()
