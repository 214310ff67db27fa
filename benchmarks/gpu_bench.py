"""GPU speed, memory and MFU: ft-plugin vs plain TRL, LoRA and QLoRA, random-weight Llamas.

    python benchmarks/gpu_bench.py --shape 1b --method lora --side ft-plugin --steps 15
    bash benchmarks/gpu.sh                       (everything, < 10 min on one H200)

No downloads are possible on the GPU machine: models are built from a Llama config with
random weights (speed and memory do not depend on trained weights) and saved once to
/tmp; the data is the builtin finance-sentiment sample repeated. Both sides train 8 rows
per step with ``max_length`` 1024: TRL as documented (padded batches, its defaults), and
ft-plugin with ``sample_packing: true`` (rows concatenated, attention per row:
flash-attn's varlen kernel where installed, else ``sdpa_packed``'s bucketed SDPA) or
``bins``. MFU is model FLOP/s over the H200's dense bf16 peak (989 TFLOP/s), LoRA-aware
4·N per token plus attention over each row's own length.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {  # Llama-3.2-1B and Llama-3.1-8B shapes
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8},
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8},
}  # fmt: skip
H200_BF16_PEAK = 989e12
SEQUENCE_LEN = 1024
ROWS_PER_STEP = 8


def build_model(shape: str) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ft_plugin.models import resolve_base_model

    folder = Path(f"/tmp/ft-plugin-bench-{shape}")
    if (folder / "config.json").is_file():
        return folder
    config = LlamaConfig(
        vocab_size=49152, max_position_embeddings=4096, tie_word_embeddings=False, **SHAPES[shape]
    )
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer_source = resolve_base_model("embedded:smollm2-135m-instruct").path
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(folder)
    return folder


def rows() -> list[dict]:
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data.formats import convert_rows
    from ft_plugin.data.reading import read_rows

    spec = DatasetSection(path="builtin:finance-sentiment", type="finance-sentiment")
    return convert_rows(read_rows(spec.path), spec).examples * 20


def run_trl(model_path: Path, steps: int, method: str) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    quantization = (
        BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
        if method == "qlora" else None
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16,
                                                 quantization_config=quantization, device_map="cuda")  # fmt: skip
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=ROWS_PER_STEP,
                     learning_rate=2e-4, max_length=SEQUENCE_LEN, logging_steps=1, report_to=[],
                     save_strategy="no", seed=42)  # fmt: skip
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows()),
                         processing_class=AutoTokenizer.from_pretrained(model_path), peft_config=lora)  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.log_history[-2].get("num_tokens", 0))
    return {
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1),
    }


def run_ours(model_path: Path, steps: int, method: str, packing: bool | str) -> dict:
    from ft_plugin.config import load_recipe
    from ft_plugin.engine import prepare_run, run

    overrides = {"base_model": str(model_path), "max_steps": steps, "micro_batch_size": ROWS_PER_STEP,
                 "gradient_accumulation_steps": 1, "sample_packing": packing, "sequence_len": SEQUENCE_LEN,
                 "val_set_size": 0, "report_to": "none", "save_steps": 100000, "logging_steps": 1}  # fmt: skip
    if method == "qlora":
        overrides |= {"adapter": "qlora", "load_in_4bit": True}
    loaded = load_recipe("finance-sentiment-lora", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_run(loaded, tmp + "/run")
        metrics = run(prepared).metrics
        attention = prepared.trainer.model.config._attn_implementation
    return {"tokens": metrics["train_tokens"], "seconds": metrics["wall_seconds"],
            "tokens_per_second": metrics["tokens_per_second"], "rows_per_step": metrics["rows_per_step"],
            "attention": attention}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--method", choices=["lora", "qlora"], default="lora")
    parser.add_argument(
        "--side", choices=["trl", "ft-plugin", "ft-plugin-bins"], default="ft-plugin"
    )
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    import torch
    from transformers import AutoConfig

    folder = build_model(args.shape)
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if args.side == "trl":
        result = run_trl(folder, args.steps, args.method)
    else:
        result = run_ours(
            folder, args.steps, args.method, "bins" if args.side.endswith("bins") else True
        )
    config = AutoConfig.from_pretrained(folder)
    d, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads / config.num_attention_heads
    n = config.vocab_size * d * 2 + layers * (
        2 * d * d * (1 + kv) + 3 * d * config.intermediate_size
    )
    mean_row = 90  # tokens per templated row of the sample; attention is per row
    flops_per_token = 4 * n + 12 * layers * mean_row * d
    result.update(shape=args.shape, method=args.method, side=args.side, params=int(n),
                  wall=round(time.perf_counter() - started, 1),
                  peak_memory_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                  mfu=round(result["tokens_per_second"] * flops_per_token / H200_BF16_PEAK, 4))  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
