"""Attention over packed rows whose cost is linear in the number of rows.

Padding-free packing (TRL's collator) concatenates the rows of a micro-batch into one
sequence of ``T`` tokens and marks where each row starts (``cu_seq_lens_q``, or
``position_ids`` restarting at 0). SDPA with transformers' block-diagonal mask attends
over the whole ``T x T`` square, quadratic in the number of rows packed together (on a
CPU it also materialises the square per head and layer: 13.7 GB for a 135M model with
8 bins of 512 tokens). This module registers ``sdpa_packed``, an attention function
that runs causal SDPA on each row alone, so the work is ``sum(length^2)``:

- on the CPU, one SDPA call per row on a view of the flat sequence (no copies), with
  the math kernel for rows up to ``CPU_MATH_MAX_LEN`` tokens, where it measured up to
  1.6x faster than the CPU flash kernel forward + backward, and flash above;
- on an accelerator, rows gathered into one padded batch per power-of-two length
  bucket (at most 4x the exact work, a few kernel launches per layer).

A sliding window (Mistral, Gemma 3, Phi-3, Qwen2's windowed layers) is honoured inside each
row with a banded mask. Unpacked inputs (padded batches, generation with a KV cache) go to
transformers' SDPA unchanged. :func:`packing_problem` says which models this cannot
serve (a recurrent layer, capped attention logits, bidirectional attention, no SDPA).
Written here because transformers has no CPU varlen kernel
(``flash_attention_2`` needs CUDA and flash-attn; FlexAttention needs ``torch.compile``).
"""

from __future__ import annotations

from typing import Any

import torch

PACKED_ATTENTION = "sdpa_packed"
CPU_MATH_MAX_LEN = 384  # measured crossover of the CPU math and flash SDPA kernels (fwd + bwd)
MIN_BUCKET = 16  # shortest padded length on an accelerator

Segments = list[tuple[int, int]]  # (start, length) of each row on the flat B*T token axis


def packed_segments(cu_seq_lens: torch.Tensor | None, position_ids: torch.Tensor | None,
                    batch: int, length: int) -> Segments | None:  # fmt: skip
    """Where each packed row sits on the flat token axis, or None when nothing is packed.

    Example:
        >>> packed_segments(None, torch.tensor([[0, 1, 2, 0, 1]]), 1, 5)
        [(0, 3), (3, 2)]
        >>> packed_segments(torch.tensor([0, 5]), None, 1, 5) is None  # one row: not packed
        True
    """
    if cu_seq_lens is not None and batch == 1:
        bounds = cu_seq_lens.tolist()
        segments = [(a, b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        return segments if len(segments) > 1 else None
    if position_ids is None:
        return None
    starts = (position_ids.expand(batch, -1) == 0).nonzero().tolist()  # rows restart at 0
    if len(starts) <= batch or len({row for row, start in starts if start == 0}) < batch:
        return None  # one row per batch line, or positions that do not start at 0
    segments = []
    for index, (row, start) in enumerate(starts):
        following = starts[index + 1] if index + 1 < len(starts) else None
        end = following[1] if following is not None and following[0] == row else length
        segments.append((row * length + start, end - start))
    return segments


_last: tuple[Any, Segments | None] | None = None


def _segments_once(key: Any, compute: Any) -> Segments | None:
    """One computation per forward pass: every layer sees the same ``cu_seq_lens`` tensor."""
    global _last
    if key is None:
        return None
    if _last is None or _last[0] is not key:
        _last = (key, compute())
    return _last[1]


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention interface: ``query`` [B, H, T, D] -> output [B, T, H, D]."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, length, _ = query.shape
    window = kwargs.get("sliding_window")
    segments = None
    if attention_mask is None and length > 1 and key.shape[2] == length:
        cu_seq_lens, position_ids = kwargs.get("cu_seq_lens_q"), kwargs.get("position_ids")
        segments = _segments_once(
            cu_seq_lens if cu_seq_lens is not None else position_ids,
            lambda: packed_segments(cu_seq_lens, position_ids, batch, length),
        )
        if segments is None:  # one unpadded row: our mask function left the window to us
            attention_mask = window_mask(length, window, query.device)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)  # fmt: skip
    if kwargs.get("softcap") is not None:  # SDPA cannot cap logits; never train without the cap
        raise ValueError(f"{PACKED_ATTENTION} cannot cap attention logits (softcap); use eager")
    flat = [
        t.transpose(1, 2).reshape(batch * length, t.shape[1], t.shape[3])
        for t in (query, key, value)
    ]
    run = _per_row if query.device.type == "cpu" else _per_bucket
    output = run(module, *flat, segments, dropout, scaling, window)
    return output.reshape(batch, length, heads, -1), None


def window_mask(size: int, window: int | None, device: torch.device) -> torch.Tensor | None:
    """Causal sliding-window mask [1, 1, size, size] (True: attend), as transformers draws it
    (a query sees itself and the ``window - 1`` tokens before it); None when the window
    covers the whole row and plain causal attention is the same.

    Example:
        >>> window_mask(3, 2, torch.device("cpu"))[0, 0].int().tolist()
        [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
        >>> window_mask(3, 3, torch.device("cpu")) is None
        True
    """
    if window is None or size <= window:
        return None
    index = torch.arange(size, device=device)
    distance = index[:, None] - index[None, :]
    return ((distance >= 0) & (distance < window))[None, None]


def _per_row(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             segments: Segments, dropout: float, scaling: float | None,
             window: int | None = None) -> torch.Tensor:  # fmt: skip
    """CPU: SDPA on each row's slice of the flat [tokens, heads, dim] tensors."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    pieces = []
    for start, size in segments:
        q, k, v = (t[start : start + size].transpose(0, 1)[None] for t in (query, key, value))
        mask = window_mask(size, window, query.device)
        # Math wins only where its cheap backward counts; a forward alone (eval) is flash's,
        # which takes no mask.
        short = size <= CPU_MATH_MAX_LEN and query.requires_grad
        backend = SDPBackend.MATH if short or mask is not None else SDPBackend.FLASH_ATTENTION
        with sdpa_kernel(backend):
            out, _ = sdpa_attention_forward(
                module, q, k, v, mask, dropout=dropout, scaling=scaling, is_causal=mask is None
            )
        pieces.append(out[0])  # [size, heads, dim]
    return torch.cat(pieces)


def _per_bucket(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                segments: Segments, dropout: float, scaling: float | None,
                window: int | None = None) -> torch.Tensor:  # fmt: skip
    """Accelerators: rows of similar length padded into one batch, one SDPA call per bucket.

    Positions past a row's end gather the tokens that follow it: causal attention keeps
    the row's real queries from seeing them, and their outputs are dropped (no gradient).
    Every row of a bucket starts at position 0, so one window mask serves them all.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    last = sum(size for _, size in segments) - 1
    buckets: dict[int, Segments] = {}
    for start, size in segments:
        buckets.setdefault(max(MIN_BUCKET, 1 << (size - 1).bit_length()), []).append((start, size))
    pieces, placed = [], []
    for width, rows in buckets.items():
        offsets = torch.arange(width, device=query.device)
        starts = torch.tensor([s for s, _ in rows], device=query.device)[:, None]
        sizes = torch.tensor([n for _, n in rows], device=query.device)[:, None]
        gather = (starts + offsets).clamp(max=last)
        q, k, v = (
            t[gather].transpose(1, 2) for t in (query, key, value)
        )  # [rows, heads, width, dim]
        mask = window_mask(width, window, query.device)
        out, _ = sdpa_attention_forward(
            module, q, k, v, mask, dropout=dropout, scaling=scaling, is_causal=mask is None
        )
        real = (offsets < sizes).flatten()
        pieces.append(out.reshape(-1, *out.shape[2:])[real])
        placed.append(gather.flatten()[real])
    order = torch.empty(last + 1, dtype=torch.long, device=query.device)
    order[torch.cat(placed)] = torch.arange(last + 1, device=query.device)
    return torch.cat(pieces)[order]


def packed_sdpa_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """No mask for unpadded training inputs (rows are told apart by the attention itself)."""
    from transformers.masking_utils import sdpa_mask

    if kwargs.get("attention_mask") is None and kwargs.get("q_length") == kwargs.get("kv_length"):
        return None
    return sdpa_mask(*args, **kwargs)


def register_packed_attention() -> str:
    """Register ``sdpa_packed`` with transformers (idempotent) and return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, packed_sdpa_mask)
    return PACKED_ATTENTION


# Layer kinds that keep packed rows apart: (sliding-window) causal attention over positions
# that restart at 0 in each row. Anything else (linear attention, Mamba, convolutions,
# chunked attention) would carry one row's tokens into the next.
ATTENTION_LAYERS = {"full_attention", "sliding_attention", "attention"}


def packing_problem(config: Any, model_class: Any = None,
                    kernel: str | None = PACKED_ATTENTION) -> str | None:  # fmt: skip
    """Why packed rows cannot train apart in this model with ``kernel``, or None when they can.

    ``config`` is the model's transformers config, ``model_class`` the class that loads it
    (None when unknown), ``kernel`` the attention implementation the run picks (any
    kernel fails on layers that are not attention; ``sdpa_packed`` needs SDPA and
    transformers' pluggable attention besides).

    Example:
        >>> from transformers import Gemma2Config, LlamaConfig
        >>> packing_problem(LlamaConfig()) is None
        True
        >>> packing_problem(Gemma2Config())
        'it caps attention logits (attn_logit_softcapping), which SDPA cannot'
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    kinds = sorted(set(getattr(text, "layer_types", None) or ()) - ATTENTION_LAYERS)
    if kinds:
        return (
            f"its {', '.join(kinds)} layers are not causal attention and would carry one "
            "packed row into the next"
        )
    if getattr(text, "use_bidirectional_attention", False) or not getattr(text, "is_causal", True):
        return "it attends in both directions, so packed rows would see each other"
    if kernel != PACKED_ATTENTION:
        return None
    if getattr(text, "attn_logit_softcapping", None) is not None:
        return "it caps attention logits (attn_logit_softcapping), which SDPA cannot"
    if model_class is not None and not getattr(model_class, "_supports_attention_backend", False):
        return f"{model_class.__name__} does not take transformers' pluggable attention functions"
    if model_class is not None and not getattr(model_class, "_supports_sdpa", False):
        return f"{model_class.__name__} has no SDPA attention"
    return None
