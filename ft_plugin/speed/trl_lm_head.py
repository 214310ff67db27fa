"""The one place where ft-plugin adjusts TRL's behaviour; tests fail if TRL moves it.

TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``) is tuned for its Triton
kernels. On a CPU, in eager mode, two of its choices cost a LoRA step on the embedded
model more than the model itself does (``benchmarks/results/profile*.json``):

- it scores every position, not only those that carry loss, because on compiled
  backends (Neuron) a varying number of positions would recompile the tiles: on a CPU
  that is the vocabulary projection and its fp32 backward for the whole prompt;
- it projects up to 4,096 tokens per tile: a [4096, 32768] tile and its fp32
  temporaries fall out of a CPU's cache, and the element-wise passes over them grew
  faster than the token count (5x the time for 2x the answer tokens, measured).

``tune_fused_lm_head_for_cpu`` makes the compact choice and uses 128-token tiles when
no CUDA device is present; the torch kernels and the loss are unchanged (tested
against TRL's own scoring).
"""

from __future__ import annotations

from typing import Any

CPU_TOKENS_PER_TILE = 128  # a [128, 32768] tile and its fp32 temporaries stay in cache
_PATCHED = False


def tune_fused_lm_head_for_cpu() -> bool:
    """Compact scoring on CPUs, and small token tiles where no CUDA device is present.

    Returns True when TRL's switches were where this module expects them.
    """
    global _PATCHED
    if _PATCHED:
        return True
    import torch
    import trl.kernels.chunked_logprob as chunked_logprob
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None or not hasattr(chunked_logprob, "TOKEN_CHUNK_SIZE"):
        return False  # TRL moved them: training stays correct, only slower (a test says so)

    def compact_positions(device: Any) -> bool:
        return device.type == "cpu" or original(device)

    trl_utils._use_triton = compact_positions  # only the compact choice reads this name here
    if not torch.cuda.is_available():
        chunked_logprob.TOKEN_CHUNK_SIZE = CPU_TOKENS_PER_TILE
    _PATCHED = True
    return True
