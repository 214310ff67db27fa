#!/usr/bin/env bash
# GPU benchmark (one H200, < 10 minutes): ft-plugin (packing rows and bins, per-row attention)
# vs plain TRL, LoRA and QLoRA, 1B and 8B shapes.
# The device has torch, transformers, peft, accelerate; carry wheels for trl, datasets,
# bitsandbytes and pydantic (pip download them here into wheels/, ~60 MB) and the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d wheels ]; then pip install -q --no-index --find-links wheels trl datasets bitsandbytes pydantic PyYAML gguf; fi
pip install -q --no-deps -e .
out=${OUT:-benchmarks/results}
mkdir -p "$out"
for shape in 1b 8b; do
  for method in lora qlora; do
    for side in trl ft-plugin ft-plugin-bins; do
      timeout 100 python benchmarks/gpu_bench.py --shape $shape --method $method --side $side --steps 15 \
        | tail -1 | tee -a "$out/gpu.jsonl" || echo "{\"shape\": \"$shape\", \"method\": \"$method\", \"side\": \"$side\", \"error\": \"failed or timed out\"}" | tee -a "$out/gpu.jsonl"
    done
  done
done
