"""Recipe keys about the base model and tokenizer (Axolotl names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import Section

EMBEDDED_DEFAULT = "embedded:smollm2-135m-instruct"


class ModelSection(Section):
    base_model: str = Field(
        EMBEDDED_DEFAULT,
        description="Base model: a Hub id (`meta-llama/Llama-3.1-8B`), a local folder, or "
        "`embedded:smollm2-135m-instruct` (ships with ft-plugin, no download).",
    )
    base_model_revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit) of `base_model`."
    )
    tokenizer_config: str | None = Field(
        None, description="Tokenizer to use instead of the base model's own."
    )
    trust_remote_code: bool = Field(
        False, description="Run model code from the Hub repo. Off unless you trust the repo."
    )
    chat_template: str | None = Field(
        None,
        description="Chat template: `tokenizer_default` (the model's own), `chatml`, or a Jinja "
        "template string. Default: the model's own, ChatML when it has none.",
    )
    special_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Special tokens to set on the tokenizer, e.g. `{pad_token: '<|pad|>'}`.",
    )
    load_in_4bit: bool = Field(
        False, description="Load the base in 4-bit NF4 (bitsandbytes); QLoRA."
    )
    load_in_8bit: bool = Field(False, description="Load the base in 8-bit (bitsandbytes).")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    bnb_4bit_use_double_quant: bool = Field(
        True, description="Quantize the quantization constants too."
    )
    bnb_4bit_compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Matmul dtype for 4-bit layers; `auto` follows the training precision."
    )
    attn_implementation: Literal[
        "auto", "eager", "sdpa", "sdpa_packed", "flash_attention_2", "flash_attention_3"
    ] = Field(
        "auto",
        description="Attention kernel; `auto` is SDPA, and with sample_packing flash_attention_2 "
        "on a CUDA GPU with flash-attn installed, else `sdpa_packed` (SDPA per packed row).",
    )
    rope_scaling: dict[str, Any] | None = Field(
        None,
        description="RoPE scaling for contexts past the model's native length, e.g. "
        "`{rope_type: linear, factor: 2.0}`. Costs quality; train on long text to recover.",
    )
