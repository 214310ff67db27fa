"""The precision a run trains in on this machine: one rule for training and its estimate.

`bf16: auto` is bf16 on a GPU that supports it and on CPUs with bf16 units, else fp32;
`fp16: true` is fp16. Under adapters the frozen base loads in the half dtype (on a CPU
not in fp16). The engine trains with it (``engine.sft_config``) and the memory estimate
(``methods.estimate``) counts with it; this module sits below both layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import torch


class PrecisionKeys(Protocol):
    """The recipe keys the rule reads (a ``Recipe`` has them)."""

    bf16: bool | Literal["auto"]
    fp16: bool


@dataclass(frozen=True)
class Precision:
    """Mixed-precision choice: autocast flags and the dtype to load base weights in."""

    bf16: bool
    fp16: bool
    load_dtype: torch.dtype

    @property
    def label(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix units (AMX or AVX512-BF16).

    Training measured faster in bf16 than fp32 on both (Intel AMX, AMD AVX512-BF16). Without
    these units bf16 is emulated and slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(recipe: PrecisionKeys, uses_peft: bool) -> Precision:
    """Resolve `bf16: auto` / `fp16` for this machine and the dtype of the frozen base.

    Example:
        >>> from types import SimpleNamespace
        >>> choose_precision(SimpleNamespace(bf16=False, fp16=False), uses_peft=True).label
        'fp32'
    """
    import torch

    cuda = torch.cuda.is_available()
    if recipe.fp16:
        bf16, fp16 = False, True
    elif recipe.bf16 == "auto":
        bf16, fp16 = (torch.cuda.is_bf16_supported() if cuda else cpu_has_fast_bf16()), False
    else:
        bf16, fp16 = bool(recipe.bf16), False
    # Adapters over a frozen base: keep the base in the half dtype (half the memory, and
    # on the CPU no per-step cast of every frozen weight by autocast: measured in
    # BENCHMARKS.md); adapters and trainable full weights stay fp32 under autocast.
    load = torch.float32
    if uses_peft and (cuda or bf16):
        load = torch.bfloat16 if bf16 else torch.float16 if fp16 else torch.float32
    return Precision(bf16, fp16, load)
