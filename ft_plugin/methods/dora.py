"""DoRA: weight-decomposed LoRA (Liu et al., 2024), PEFT's `use_dora=True`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lora import LoraMethod

if TYPE_CHECKING:
    from ft_plugin.config import Recipe


class DoraMethod(LoraMethod):
    """LoRA on the direction, a learned magnitude per output feature."""

    name = "dora"
    use_dora = True
    llama_cpp_adapter = False  # llama.cpp's LoRA has no magnitude vector

    def recipe_problems(self, recipe: Recipe) -> list[tuple[tuple[str, ...], str]]:
        problems = super().recipe_problems(recipe)
        if recipe.lora_target_parameters:
            problems.append((("adapter",), "DoRA cannot train lora_target_parameters "
                             "(PEFT's ParamWrapper); use adapter: lora"))  # fmt: skip
        return problems
