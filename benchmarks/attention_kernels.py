"""The measurements behind the packed-attention and dropout choices, on this machine's CPU.

    python benchmarks/attention_kernels.py

- SDPA forward + backward of one causal row, math vs flash kernel, by row length
  (``CPU_MATH_MAX_LEN`` in ft_plugin/speed/packed_attention.py is the crossover).
- Attention over k packed rows of TFNS length: transformers' block-diagonal mask over
  the flattened micro-batch vs ``sdpa_packed`` (each row alone), k = 8 ... 48.
- LoRA dropout on one [670, 576] bf16 input: ``nn.Dropout`` vs ``SharedInputDropout``.

Shapes are the embedded SmolLM2-135M's (9 query heads, 3 key/value heads, head dim 64),
bf16, 2 threads. Each number is the best of 10 timed repetitions after one warm-up.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

HEADS, KV_HEADS, HEAD_DIM = 9, 3, 64
ROW_TOKENS = 84  # a templated TFNS headline


def best_ms(fn, repeats: int = 10) -> float:  # noqa: ANN001
    fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 3)


def qkv(length: int) -> tuple[torch.Tensor, ...]:
    shapes = [
        (1, HEADS, length, HEAD_DIM),
        (1, KV_HEADS, length, HEAD_DIM),
        (1, KV_HEADS, length, HEAD_DIM),
    ]
    return tuple(torch.randn(s, dtype=torch.bfloat16, requires_grad=True) for s in shapes)


def _sdpa_step(backend: object, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(backend):
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=True
        )
    out.sum().backward()


def kernel_by_length() -> list[dict]:
    from functools import partial

    from torch.nn.attention import SDPBackend

    rows = []
    for length in (64, 128, 256, 384, 512, 768, 1024):
        tensors = qkv(length)
        result = {"length": length}
        for backend in (SDPBackend.MATH, SDPBackend.FLASH_ATTENTION):
            result[backend.name.lower()] = best_ms(partial(_sdpa_step, backend, *tensors))
        rows.append(result)
    return rows


class _Attention(torch.nn.Module):
    num_key_value_groups, is_causal = HEADS // KV_HEADS, True


def _block_mask_step(tensors: tuple[torch.Tensor, ...], mask: torch.Tensor) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    out, _ = sdpa_attention_forward(_Attention(), *tensors, mask[None, None], is_causal=False)
    out.sum().backward()


def _per_row_step(tensors: tuple[torch.Tensor, ...], cu_seq_lens: torch.Tensor) -> None:
    from ft_plugin.speed.packed_attention import packed_sdpa_attention

    out, _ = packed_sdpa_attention(_Attention(), *tensors, None, cu_seq_lens_q=cu_seq_lens)
    out.sum().backward()


def packed_rows() -> list[dict]:
    from functools import partial

    rows = []
    for count in (8, 24, 48):
        lengths = [ROW_TOKENS + (i % 5) * 6 - 12 for i in range(count)]
        total = sum(lengths)
        tensors = qkv(total)
        segment = torch.repeat_interleave(torch.arange(count), torch.tensor(lengths))
        mask = (segment[:, None] == segment[None, :]) & torch.ones(
            total, total, dtype=torch.bool
        ).tril()
        cu_seq_lens = torch.tensor(
            [0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32
        )
        rows.append({"rows": count, "tokens": total,
                     "block_mask_ms": best_ms(partial(_block_mask_step, tensors, mask)),
                     "per_row_ms": best_ms(partial(_per_row_step, tensors, cu_seq_lens))})  # fmt: skip
    return rows


def dropout() -> dict:
    from ft_plugin.speed.lora_layers import SharedInputDropout

    x = torch.randn(670, 576, dtype=torch.bfloat16)
    torch_dropout, ours = torch.nn.Dropout(0.05).train(), SharedInputDropout(0.05).train()

    def fresh_ours() -> None:
        SharedInputDropout._last = None  # a new input each call: no sharing in this number
        ours(x)

    return {"elements": x.numel(), "torch_dropout_ms": best_ms(lambda: torch_dropout(x)),
            "shared_input_dropout_ms": best_ms(fresh_ours)}  # fmt: skip


def main() -> None:
    torch.manual_seed(0)
    results = {
        "sdpa_by_length": kernel_by_length(),
        "packed_rows": packed_rows(),
        "dropout": dropout(),
    }
    for name, value in results.items():
        print(name, value)
    save("kernels", results)


if __name__ == "__main__":
    main()
