"""What every fine-tuning method provides (one file or folder per method, one registry).

A method turns a loaded base model into the model that trains: it may ask for a
quantized load, wraps the model in a PEFT adapter or freezes parameters, and says
whether its result can be merged into plain weights. Methods are registered by name in
:mod:`ft_plugin.registry` (builtins) or through the ``ft_plugin.methods`` entry point.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from peft import PeftConfig
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


class FineTuningMethod:
    """Base class for fine-tuning methods.

    Subclasses set :attr:`name` and either override :meth:`peft_config` (PEFT methods)
    or :meth:`prepare` (methods that train the model's own weights).
    """

    name: ClassVar[str]
    #: True when the result is a PEFT adapter saved next to, not inside, the base weights.
    uses_peft: ClassVar[bool] = True
    #: True when `ft-plugin merge` can fold the result into plain weights.
    mergeable: ClassVar[bool] = True
    #: Why merging is impossible, shown by `ft-plugin merge` when ``mergeable`` is False.
    not_mergeable_reason: ClassVar[str] = ""

    def quantization_config(self, recipe: Recipe, compute_dtype: torch.dtype) -> Any | None:
        """A `BitsAndBytesConfig` when the base must be loaded quantized, else None."""
        return None

    def peft_config(self, recipe: Recipe, model: PreTrainedModel) -> PeftConfig:
        """The PEFT configuration for this recipe (PEFT methods only)."""
        raise NotImplementedError(f"{type(self).__name__} must implement peft_config or prepare")

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        """Return the model that trains: by default, ``model`` wrapped in this method's adapter."""
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(recipe, model))

    def start_from(
        self, model: PreTrainedModel, recipe: Recipe, adapter_dir: Path
    ) -> torch.nn.Module:
        """``model`` with an existing adapter loaded trainable (`lora_model_dir`)."""
        from peft import PeftModel

        if not self.uses_peft:
            from ft_plugin.errors import UserError

            raise UserError(
                f"lora_model_dir: adapter {self.name} trains full weights; set base_model to the earlier "
                "run directory instead"
            )
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Names (last component) of every Linear layer except the output head.

    This is Axolotl's `lora_target_linear: true`; bitsandbytes' 4- and 8-bit linears count.
    """
    import sys

    import torch

    kinds: tuple[type, ...] = (torch.nn.Linear,)
    bnb = sys.modules.get("bitsandbytes")  # a quantized model has imported it; don't otherwise
    if bnb is not None:
        kinds += (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, kinds) and module is not output
    }
    return sorted(names)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights count as their true size.

    The one definition: training reports it and the estimate (methods.estimate) uses it.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
        >>> _ = net[0].requires_grad_(False)
        >>> count_parameters(net)
        (8, 23)
    """
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        if hasattr(parameter, "quant_state"):  # bitsandbytes Params4bit packs two values per byte
            count = math.prod(parameter.quant_state.shape)
        total += count
        trainable += count if parameter.requires_grad else 0
    return trainable, total
