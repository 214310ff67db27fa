"""Houlsby-style bottleneck adapters, built as a real PEFT tuner (``adapter: bottleneck``).

A small MLP (hidden -> ``bottleneck_size`` -> hidden, with a non-linearity in between) is
added to the output of every attention block and every MLP block, before the residual add
(Houlsby et al., 2019). PEFT has no such method, so this package follows PEFT's own layout
(``config.py``, ``layer.py``, ``model.py``) and registers itself with PEFT on import (see
``registration.py``). After ``import ft_plugin.methods.bottleneck`` PEFT's usual API works::

    from peft import PeftModel, get_peft_model
    model = get_peft_model(base, BottleneckConfig(bottleneck_size=64))
    model.save_pretrained("out")          # adapter_config.json: "peft_type": "BOTTLENECK"
    model = PeftModel.from_pretrained(base, "out")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ft_plugin.methods.base import FineTuningMethod, peft_usage

from .config import BottleneckConfig
from .layer import BottleneckLayer, BottleneckMergeError
from .model import BottleneckModel
from .registration import BottleneckRegistrationError, register

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe

__all__ = [
    "BottleneckConfig",
    "BottleneckLayer",
    "BottleneckMergeError",
    "BottleneckMethod",
    "BottleneckModel",
    "BottleneckRegistrationError",
]

register(config_cls=BottleneckConfig, model_cls=BottleneckModel)


class BottleneckMethod(FineTuningMethod):
    """``adapter: bottleneck`` — trains Houlsby adapters after every attention and MLP block."""

    name = "bottleneck"
    mergeable: ClassVar[bool] = False
    not_mergeable_reason: ClassVar[str] = (
        "bottleneck adapters put a non-linearity between their down and up projections, so "
        "no weight update exists that could be merged into the base model."
    )
    recipe_suffix: ClassVar[str] = "adapter"  # medical-adapter, legal-adapter, ...

    def register_with_peft(self) -> None:
        """Add ``BOTTLENECK`` to PEFT's methods (idempotent; importing this package did)."""
        register(config_cls=BottleneckConfig, model_cls=BottleneckModel)

    def card_usage(self, repo_id: str, base_id: str | None) -> list[str]:
        """PEFT's loader after ft-plugin's import, which teaches PEFT the adapter type;
        transformers' ``load_adapter`` does not know it."""
        return ["Bottleneck adapters are not part of PEFT: install ft-plugin (`pip install ft-plugin`),",
                "which registers them with PEFT on import.", "", "```python",
                "import ft_plugin.methods.bottleneck  # registers the adapter type with PEFT",
                *peft_usage(repo_id)[1:]]  # fmt: skip

    def peft_config(self, recipe: Recipe, model: PreTrainedModel) -> BottleneckConfig:
        """Recipe keys: ``bottleneck_size``, ``bottleneck_non_linearity``,
        ``bottleneck_dropout`` and ``lora_modules_to_save``; targets are the default
        blocks (``self_attn`` and ``mlp`` on Llama-like models)."""
        modules_to_save = getattr(recipe, "lora_modules_to_save", None)
        return BottleneckConfig(
            task_type="CAUSAL_LM",
            bottleneck_size=recipe.bottleneck_size,
            non_linearity=recipe.bottleneck_non_linearity,
            adapter_dropout=recipe.bottleneck_dropout,
            modules_to_save=list(modules_to_save) if modules_to_save else None,
        )
