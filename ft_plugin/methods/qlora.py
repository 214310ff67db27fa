"""QLoRA: LoRA over a 4-bit NF4 base (Dettmers et al., 2023), via bitsandbytes.

LoRA itself loads the base quantized when the recipe asks (:mod:`.bnb`); `adapter: qlora`
means a 4-bit base by definition (the schema sets `load_in_4bit`).
"""

from __future__ import annotations

from .bnb import bitsandbytes_config
from .lora import LoraMethod

__all__ = ["QLoraMethod", "bitsandbytes_config"]


class QLoraMethod(LoraMethod):
    """LoRA adapters trained through a frozen 4-bit base."""

    name = "qlora"
