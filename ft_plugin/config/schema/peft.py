"""Recipe keys that choose and configure the fine-tuning method (Axolotl names)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Section


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
        "lora",
        description="Fine-tuning method: full, freeze, lora, qlora, dora, ia3, llama-adapter, "
        "bottleneck, or a name a plugin registers. (Axolotl trains the full model when "
        "`adapter` is absent; we default to LoRA, the safe choice on a big base.)",
    )
    lora_r: int = Field(8, ge=1, le=4096, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_target_modules: list[str] | None = Field(
        None,
        description="Module names (or suffixes) that get adapters, e.g. [q_proj, v_proj]. "
        "Default: the attention projections.",
    )
    lora_target_linear: bool = Field(False, description="Put adapters on every linear layer.")
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

    @model_validator(mode="after")
    def _freeze_choice(self) -> PeftSection:
        if self.freeze and self.freeze.top_layers and self.freeze.fraction:
            raise ValueError("freeze: give `top_layers` or `fraction`, not both")
        return self
