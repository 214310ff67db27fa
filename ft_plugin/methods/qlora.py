"""QLoRA: LoRA over a 4-bit NF4 base (Dettmers et al., 2023), via bitsandbytes.

LoRA itself loads the base quantized when the recipe asks (:mod:`.bnb`); `adapter: qlora`
means a 4-bit base by definition (the schema sets `load_in_4bit` through
:meth:`QLoraMethod.implied_keys`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bnb import bitsandbytes_config
from .lora import LoraMethod

if TYPE_CHECKING:
    from ft_plugin.config import Recipe

__all__ = ["QLoraMethod", "bitsandbytes_config"]


class QLoraMethod(LoraMethod):
    """LoRA adapters trained through a frozen 4-bit base."""

    name = "qlora"

    def implied_keys(self, recipe: Recipe) -> dict[str, Any]:
        # QLoRA means a 4-bit base by definition (Axolotl requires the key; we imply it).
        if not recipe.load_in_8bit and not recipe.load_in_4bit:
            return {"load_in_4bit": True}
        return {}

    def recipe_problems(self, recipe: Recipe) -> list[tuple[tuple[str, ...], str]]:
        problems = super().recipe_problems(recipe)
        if recipe.load_in_8bit:
            problems.append((("load_in_8bit",), "adapter: qlora is 4-bit; it cannot be "
                             "combined with load_in_8bit: true"))  # fmt: skip
        return problems
