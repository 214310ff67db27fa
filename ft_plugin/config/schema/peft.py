"""Recipe keys that choose and configure the fine-tuning method (Axolotl names)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ModelWrapValidatorHandler, field_validator, model_validator

from .base import Section
from .model import validated_with_clashes

# PEFT's ParamWrapper (LoRA on an nn.Parameter) refuses these; Axolotl checks them up front.
PARAMETER_LORA_INITS = ("default", "gaussian")


def target_parameter_clashes(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, why)`` for keys PEFT's ParamWrapper cannot train with `lora_target_parameters`.

    Example:
        >>> [key for key, _ in target_parameter_clashes(
        ...     {"lora_target_parameters": ["experts.down_proj"], "lora_dropout": 0.1})]
        ['lora_dropout']
    """
    if not data.get("lora_target_parameters"):
        return []
    clashes = []
    if data.get("lora_dropout") not in (None, 0):
        clashes.append(("lora_dropout", "must be 0 with lora_target_parameters: PEFT's "
                        "ParamWrapper has no dropout (as in Axolotl); set lora_dropout: 0"))  # fmt: skip
    if data.get("lora_init") not in (None, *PARAMETER_LORA_INITS):
        clashes.append(("lora_init", f"{data['lora_init']} reads a layer's weight, which an "
                        "expert parameter is not; write default or gaussian"))  # fmt: skip
    if data.get("peft_use_dora") is True:  # adapter: dora answers for itself (methods/dora.py)
        clashes.append(("peft_use_dora", "DoRA cannot train lora_target_parameters (PEFT's "
                        "ParamWrapper); use adapter: lora"))  # fmt: skip
    return clashes


def check_module_regex(value: list[str] | str | None) -> list[str] | str | None:
    """`lora_target_modules`: names, or one regular expression (PEFT full-matches it)."""
    for pattern in [value] if isinstance(value, str) else value or []:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression ({exc}); write module "
                             "names such as [q_proj, v_proj], or a valid pattern") from None  # fmt: skip
    return value


class FreezeSection(Section):
    """Which layers `adapter: freeze` trains (the rest stays frozen)."""

    top_layers: int | None = Field(None, ge=1, description="Train the top N decoder layers.")
    fraction: float | None = Field(
        None, gt=0, le=1, description="Train this top fraction of the decoder layers."
    )
    train_embeddings: bool = Field(False, description="Also train the input embeddings.")
    train_lm_head: bool = Field(True, description="Also train the output head.")


class PeftSection(Section):
    adapter: str = Field(
        "full",
        description="Fine-tuning method: full, freeze, lora, qlora, dora, ia3, llama-adapter, "
        "bottleneck, or a name a plugin registers. Absent or empty: the full model trains, "
        "as in Axolotl (the builtin recipes name their method).",
    )
    lora_r: int = Field(8, ge=1, le=4096, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_target_modules: list[str] | str | None = Field(
        None,
        description="Modules that get adapters: a list of names (or name suffixes), e.g. "
        "[q_proj, v_proj], or one regular expression that the whole module name must match "
        "(PEFT's rule), e.g. 'model.layers.1.self_attn.(q|v)_proj'. Default: the attention "
        "projections (none when only lora_target_parameters is given, as in Axolotl).",
    )
    lora_target_linear: bool = Field(
        False,
        description="Put adapters on every linear layer (but the output head), added to "
        "lora_target_modules as in Axolotl.",
    )
    lora_target_parameters: list[str] | str | None = Field(
        None,
        description="Parameters (not modules) that get LoRA, by name or name suffix, e.g. "
        "[mlp.experts.gate_up_proj, mlp.experts.down_proj]: the fused expert weights of MoE "
        "models, which are nn.Parameter tensors and no Linear layers (PEFT "
        "`target_parameters`). Needs lora_dropout 0 (its default then), LoRA (not DoRA) and "
        "lora_init default or gaussian.",
    )
    lora_modules_to_save: list[str] | None = Field(
        None, description="Modules trained and saved in full alongside the adapter (e.g. lm_head)."
    )
    lora_init: Literal["default", "gaussian", "pissa", "olora"] = Field(
        "default", description="LoRA weight initialisation (PEFT `init_lora_weights`)."
    )
    lora_model_dir: str | None = Field(
        None, description="Start from an existing adapter (run directory or hf://…)."
    )
    peft_use_dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA).")
    peft_use_rslora: bool = Field(False, description="Rank-stabilised scaling alpha/sqrt(r).")
    ia3_target_modules: list[str] | None = Field(
        None, description="IA3: modules to rescale. Default: k_proj, v_proj, down_proj."
    )
    ia3_feedforward_modules: list[str] | None = Field(
        None,
        description="IA3: which targets are feed-forward (scaled on the input). Default: down_proj.",
    )
    adapter_len: int = Field(
        10, ge=1, description="llama-adapter: number of adaption prompt tokens."
    )
    adapter_layers: int = Field(8, ge=1, description="llama-adapter: top layers that get prompts.")
    bottleneck_size: int = Field(64, ge=1, description="bottleneck: hidden size of each adapter.")
    bottleneck_non_linearity: Literal["relu", "gelu", "silu", "tanh"] = Field(
        "relu", description="bottleneck: activation between down and up projection."
    )
    bottleneck_dropout: float = Field(
        0.0, ge=0, lt=1, description="bottleneck: dropout inside the adapter."
    )
    unfrozen_parameters: list[str] | None = Field(
        None,
        description="freeze: regular expressions of parameter names to train (Axolotl's key); "
        "everything else is frozen.",
    )
    freeze: FreezeSection | None = Field(
        None, description="freeze: layer selection (`top_layers` or `fraction`)."
    )

    @field_validator("lora_target_modules")
    @classmethod
    def _module_regex(cls, value: list[str] | str | None) -> list[str] | str | None:
        return check_module_regex(value)

    @field_validator("lora_target_parameters")
    @classmethod
    def _parameter_list(cls, value: list[str] | str | None) -> list[str] | None:
        # PEFT matches target_parameters by name only (a string would be split into letters)
        return [value] if isinstance(value, str) else value

    @model_validator(mode="wrap")
    @classmethod
    def _parameters_trainable(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """`lora_target_parameters` without `lora_dropout` means dropout 0 (Axolotl's
        default); what PEFT's ParamWrapper cannot do is one error at its key."""
        if not isinstance(data, dict):
            return handler(data)
        if data.get("lora_target_parameters") and data.get("lora_dropout") is None:
            data = {**data, "lora_dropout": 0.0}
        return validated_with_clashes(cls.__name__, data, handler, target_parameter_clashes(data))

    @model_validator(mode="after")
    def _freeze_choice(self) -> PeftSection:
        if self.freeze and self.freeze.top_layers and self.freeze.fraction:
            raise ValueError("freeze: give `top_layers` or `fraction`, not both")
        return self
