"""GPU speed, memory and MFU: ft-plugin vs plain TRL, LoRA and QLoRA, random-weight Llamas.

    python benchmarks/gpu_bench.py --shape 1b --method lora --steps 20      (one measurement)
    bash benchmarks/gpu.sh                                                  (everything, < 10 min on one H200)

No downloads are possible on the GPU machine: models are built from a Llama config with
random weights (speed and memory do not depend on trained weights) and saved once to
/tmp. Data: the builtin finance-sentiment sample repeated. MFU is model FLOP/s over the
GPU's dense bf16 peak (H200: 989 TFLOP/s), with the LoRA-aware 4·N per token plus
attention 12·L·ctx·d per token.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SHAPES = {  # Llama-3.2-1B and Llama-3.1-8B shapes
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8},
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8},
}  # fmt: skip
H200_BF16_PEAK = 989e12
SEQUENCE_LEN = 1024


def build_model(shape: str) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(f"/tmp/ft-plugin-bench-{shape}")
    if (folder / "config.json").is_file():
        return folder
    config = LlamaConfig(
        vocab_size=49152, max_position_embeddings=4096, tie_word_embeddings=False, **SHAPES[shape]
    )
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    from ft_plugin.models import resolve_base_model

    tokenizer_src = resolve_base_model("embedded:smollm2-135m-instruct").path
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_src).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--method", choices=["lora", "qlora"], default="lora")
    parser.add_argument("--side", choices=["ft-plugin", "trl"], default="ft-plugin")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from speed import run_baseline_model, run_ft_plugin_model

    folder = build_model(args.shape)
    torch.cuda.reset_peak_memory_stats()
    runner = run_ft_plugin_model if args.side == "ft-plugin" else run_baseline_model
    started = time.perf_counter()
    result = runner(str(folder), args.steps, method=args.method, sequence_len=SEQUENCE_LEN)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    n = (config.vocab_size * config.hidden_size * 2 + config.num_hidden_layers * (
        4 * config.hidden_size * config.hidden_size * (1 + config.num_key_value_heads / config.num_attention_heads) / 2
        + 3 * config.hidden_size * config.intermediate_size))  # fmt: skip
    flops_per_token = 4 * n + 12 * config.num_hidden_layers * SEQUENCE_LEN * config.hidden_size
    result.update(shape=args.shape, method=args.method, side=args.side, params=int(n), wall=round(time.perf_counter() - started, 1),
                  peak_memory_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                  mfu=round(result["tokens_per_second"] * flops_per_token / H200_BF16_PEAK, 4))  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
