"""The one place where ft-plugin adjusts TRL's behaviour; tests fail if TRL moves it.

TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``) scores only the positions
that carry loss when it runs its Triton kernels, and every position elsewhere, because
on compiled backends (Neuron) a varying number of positions would recompile the tiles.
On a CPU, in eager mode, scoring every position costs the vocabulary projection and its
fp32 backward for the whole prompt: 24% of a LoRA step on the embedded model when only
the answer carries loss. ``score_only_loss_positions`` makes the compact choice on CPUs
too; the torch kernels and the loss are unchanged (tested against the full scoring).
"""

from __future__ import annotations

from typing import Any

_PATCHED = False


def score_only_loss_positions() -> bool:
    """Make TRL's fused LM head score only positions with a label on CPUs; True if applied."""
    global _PATCHED
    if _PATCHED:
        return True
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:  # TRL moved it: training stays correct, only slower (a test says so)
        return False

    def compact_positions(device: Any) -> bool:
        return device.type == "cpu" or original(device)

    trl_utils._use_triton = compact_positions  # only the compact choice reads this name here
    _PATCHED = True
    return True
