"""The adapter as it travels: a PEFT state dict as numpy arrays, and back.

Only adapter weights cross the wire (never the base model, never rows). With
``ffa-lora`` only the LoRA B matrices travel: every client starts from the same seeded
A (`set_seed(recipe.seed)` before the method wraps the model), keeps it frozen, and
the server averages B alone, which makes the average exact (avg of B·A = (avg B)·A).

Example:
    >>> import torch
    >>> state = {"x.lora_A.weight": torch.ones(2, 3), "x.lora_B.weight": torch.zeros(3, 2)}
    >>> sorted(travelling(state, "ffa-lora")), payload_bytes(travelling(state, "fedavg"))
    (['x.lora_B.weight'], 48)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FROZEN_IN_FFA = "lora_A"


def travels(key: str, strategy: str) -> bool:
    """Whether a site sends ``key`` back (ffa-lora keeps the A matrices at home)."""
    return strategy != "ffa-lora" or FROZEN_IN_FFA not in key


def travelling(state: dict[str, Any], strategy: str) -> dict[str, Any]:
    """The part of an adapter state dict that is sent, as float32 CPU tensors (numpy has
    no bfloat16)."""
    keep = {k: v for k, v in state.items() if travels(k, strategy)}
    return {k: v.detach().float().cpu().contiguous() for k, v in keep.items()}


def payload_bytes(state: dict[str, Any]) -> int:
    """Bytes of the values of a state dict (torch tensors or numpy arrays)."""
    return int(sum(v.nbytes for v in state.values()))


def freeze_shared(model: Any, strategy: str) -> None:
    """FFA-LoRA: the A matrices stay at their shared seeded start."""
    if strategy != "ffa-lora":
        return
    for name, parameter in model.named_parameters():
        if FROZEN_IN_FFA in name:
            parameter.requires_grad_(False)


def adapter_state(model: Any) -> dict[str, Any]:
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def load_global(model: Any, arrays: dict[str, Any]) -> None:
    """Put the global weights into a freshly prepared model (the rest keeps its seeded start)."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, arrays)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"global weights do not fit this adapter: {unexpected[:3]}")


def seeded_model(loaded: Any) -> tuple[Any, Any]:
    """(model, tokenizer) exactly as training prepares them, seeded, on the CPU: the
    adapter's starting point that every site and the server share."""
    from transformers import set_seed

    from ft_plugin import models, registry

    recipe = loaded.recipe
    method = registry.load_method(recipe.adapter)
    if not method.uses_peft:
        from ft_plugin.errors import UserError

        raise UserError(f"federated: adapter {recipe.adapter} has full weights; use a PEFT method")
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    tokenizer = models.load_tokenizer(recipe, base)
    set_seed(recipe.seed)
    import torch

    model = models.load_model(recipe, base, dtype=torch.float32)
    return method.prepare(model, recipe), tokenizer


def save_adapter(model: Any, arrays: dict[str, Any], folder: Path) -> None:
    """The global adapter as a PEFT folder (``PeftModel.from_pretrained`` loads it)."""
    load_global(model, arrays)
    model.save_pretrained(str(folder))
