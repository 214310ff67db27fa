"""QLoRA: LoRA over a 4-bit NF4 base (Dettmers et al., 2023), via bitsandbytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ft_plugin.errors import MissingDependencyError

from .lora import LoraMethod

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


def bitsandbytes_config(recipe: Recipe, compute_dtype: torch.dtype) -> Any | None:
    """The `BitsAndBytesConfig` for `load_in_4bit` / `load_in_8bit`, or None."""
    if not (recipe.load_in_4bit or recipe.load_in_8bit):
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"adapter: {recipe.adapter} with a quantized base needs bitsandbytes; "
            "install it with: pip install 'ft-plugin[qlora]'"
        ) from None
    import torch
    from transformers import BitsAndBytesConfig

    if recipe.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    dtype = (
        compute_dtype
        if recipe.bnb_4bit_compute_dtype == "auto"
        else getattr(torch, recipe.bnb_4bit_compute_dtype)
    )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=recipe.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=recipe.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_quant_storage=dtype,
    )


class QLoraMethod(LoraMethod):
    """LoRA adapters trained through a frozen 4-bit base."""

    name = "qlora"

    def quantization_config(self, recipe: Recipe, compute_dtype: torch.dtype) -> Any | None:
        return bitsandbytes_config(recipe, compute_dtype)

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        return super().prepare(_kbit_ready(model), recipe)

    def start_from(
        self, model: PreTrainedModel, recipe: Recipe, adapter_dir: Path
    ) -> torch.nn.Module:
        return super().start_from(_kbit_ready(model), recipe, adapter_dir)


def _kbit_ready(model: PreTrainedModel) -> PreTrainedModel:
    from peft import prepare_model_for_kbit_training

    # Casts norms to fp32 and enables input grads; checkpointing is the trainer's call.
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
