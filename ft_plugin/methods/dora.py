"""DoRA: weight-decomposed LoRA (Liu et al., 2024), PEFT's `use_dora=True`."""

from __future__ import annotations

from .lora import LoraMethod


class DoraMethod(LoraMethod):
    """LoRA on the direction, a learned magnitude per output feature."""

    name = "dora"
    use_dora = True
