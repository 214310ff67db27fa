"""A base loaded quantized by bitsandbytes (`load_in_4bit` / `load_in_8bit`, Axolotl's
`bnb_config_kwargs`), for the LoRA family: LoRA, DoRA and QLoRA train through it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ft_plugin.errors import MissingDependencyError, UserError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


def bitsandbytes_config(recipe: Recipe, compute_dtype: torch.dtype) -> Any | None:
    """The `BitsAndBytesConfig` for `load_in_4bit` / `load_in_8bit`, or None, with
    `bnb_config_kwargs` merged over it (Axolotl's rule: its entries win)."""
    if not (recipe.load_in_4bit or recipe.load_in_8bit):
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"adapter: {recipe.adapter} with a quantized base needs bitsandbytes; "
            "install it with: pip install 'ft-plugin[qlora]'"
        ) from None
    from transformers import BitsAndBytesConfig

    arguments = {
        **bitsandbytes_arguments(recipe, compute_dtype),
        **(recipe.bnb_config_kwargs or {}),
    }
    try:
        return BitsAndBytesConfig(**arguments)
    except (TypeError, ValueError) as exc:  # a value of the wrong type or out of its choices
        raise UserError(f"bnb_config_kwargs: {str(exc).splitlines()[0]}") from None


def bitsandbytes_arguments(recipe: Recipe, compute_dtype: torch.dtype) -> dict[str, Any]:
    """The BitsAndBytesConfig arguments of the recipe's own keys (before `bnb_config_kwargs`).

    Example:
        >>> import torch
        >>> from ft_plugin.config.schema import Recipe
        >>> recipe = Recipe.model_validate({"adapter": "qlora", "datasets": [{"path": "x"}]})
        >>> bitsandbytes_arguments(recipe, torch.bfloat16)["bnb_4bit_quant_type"]
        'nf4'
    """
    import torch

    if recipe.load_in_8bit:
        return {"load_in_8bit": True}
    dtype = (
        compute_dtype
        if recipe.bnb_4bit_compute_dtype == "auto"
        else getattr(torch, recipe.bnb_4bit_compute_dtype)
    )
    return {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": recipe.bnb_4bit_quant_type,
        "bnb_4bit_use_double_quant": recipe.bnb_4bit_use_double_quant,
        "bnb_4bit_compute_dtype": dtype,
        "bnb_4bit_quant_storage": dtype,
    }


def kbit_ready(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` ready for adapters over its quantized weights (a plain model unchanged)."""
    if not getattr(model, "is_quantized", False):
        return model
    from peft import prepare_model_for_kbit_training

    # Casts norms to fp32 and enables input grads; checkpointing is the trainer's call.
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
