"""Recipe keys for several processes: DeepSpeed or FSDP2 through accelerate / transformers,
and DDP (Axolotl names and value forms; `TrainingSection` inherits them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Section

FINAL_STATE_DICT = "FULL_STATE_DICT"
# transformers' `AcceleratorConfig` fields and accelerate's `GradientAccumulationPlugin`
# ones; tests/test_axolotl_training_keys_2.py checks both against the installed packages.
ACCELERATOR_CONFIG_KEYS = (
    "split_batches", "dispatch_batches", "even_batches", "use_seedable_sampler", "non_blocking",
    "gradient_accumulation_kwargs", "use_configured_state",
)  # fmt: skip
GRADIENT_ACCUMULATION_KEYS = ("num_steps", "adjust_scheduler", "sync_with_dataloader",
                              "sync_each_batch")  # fmt: skip


def _known_keys(mapping: dict[str, Any], known: tuple[str, ...], where: str = "") -> None:
    from difflib import get_close_matches

    for key in mapping:
        if key not in known:
            close = get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}unknown key {key!r}{hint}; known: {', '.join(known)}")


FSDP1_ONLY = (
    "sync_module_states", "use_orig_params", "limit_all_gathers", "backward_prefetch",
    "backward_prefetch_policy", "forward_prefetch",
)  # fmt: skip


def _only_fsdp2(value: int | None) -> int | None:
    if value not in (None, 2):
        raise ValueError(f"FSDP{value} is not supported (transformers 5 runs FSDP2); write 2")
    return value


def _full_state_dict(value: object) -> object:
    if value in ("SHARDED_STATE_DICT", "LOCAL_STATE_DICT"):
        raise ValueError(
            f"{value}: the run directory holds whole, loadable weights; write {FINAL_STATE_DICT} "
            "(checkpoints may stay sharded: fsdp_config.state_dict_type)"
        )
    return value


class FsdpConfig(Section):
    """Axolotl's `fsdp_config:` (FSDP2), keys with or without the old `fsdp_` prefix.

    FSDP1-only keys of older configs are accepted: `sharding_strategy` FULL_SHARD /
    SHARD_GRAD_OP becomes `reshard_after_forward`, the others have no effect under FSDP2
    (the run says so).
    """

    fsdp_version: int | None = Field(None, description="FSDP version: 2.")
    activation_checkpointing: bool | None = Field(
        None, description="FSDP's own activation checkpointing."
    )
    offload_params: bool | None = Field(None, description="Offload parameters to the CPU.")
    cpu_ram_efficient_loading: bool | None = Field(
        None, description="Load the weights on rank 0 only and broadcast them."
    )
    cpu_offload_pin_memory: bool | None = Field(
        None, description="Pinned host memory for offloaded parameters."
    )
    state_dict_type: Literal["FULL_STATE_DICT", "LOCAL_STATE_DICT", "SHARDED_STATE_DICT"] | None = (
        Field(None, description="How checkpoints are written.")
    )
    final_state_dict_type: Literal["FULL_STATE_DICT"] | None = Field(
        None,
        description="How the final weights are written: FULL_STATE_DICT (the run directory holds "
        "whole, loadable weights).",
    )
    auto_wrap_policy: Literal["TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP"] | None = Field(
        None, description="Which modules become FSDP units."
    )
    transformer_layer_cls_to_wrap: str | None = Field(
        None, description="Decoder layer class to wrap, e.g. LlamaDecoderLayer."
    )
    min_num_params: int | None = Field(None, ge=1, description="SIZE_BASED_WRAP: unit size.")
    reshard_after_forward: bool | None = Field(
        None, description="Free gathered parameters after the forward (FULL_SHARD)."
    )
    mixed_precision_policy: str | None = Field(
        None, description="FSDP mixed precision; ft-plugin follows bf16 / fp16 instead."
    )
    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP"] | None = Field(
        None, description="FSDP1: FULL_SHARD or SHARD_GRAD_OP (→ reshard_after_forward)."
    )
    sync_module_states: bool | None = Field(None, description="FSDP1 only: no effect.")
    use_orig_params: bool | None = Field(None, description="FSDP1 only: no effect.")
    limit_all_gathers: bool | None = Field(None, description="FSDP1 only: no effect.")
    backward_prefetch: str | None = Field(None, description="FSDP1 only: no effect.")
    backward_prefetch_policy: str | None = Field(None, description="FSDP1 only: no effect.")
    forward_prefetch: bool | None = Field(None, description="FSDP1 only: no effect.")

    @model_validator(mode="before")
    @classmethod
    def _unprefixed(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = "fsdp_version" if key in ("version", "fsdp_version") else key
            name = name.removeprefix("fsdp_") if name != "fsdp_version" else name
            out[name] = value
        return out

    @field_validator("fsdp_version")
    @classmethod
    def _fsdp2(cls, value: int | None) -> int | None:
        return _only_fsdp2(value)

    @field_validator("final_state_dict_type", mode="before")
    @classmethod
    def _full_weights(cls, value: object) -> object:
        return _full_state_dict(value)


class DistributedSection(Section):
    """Several processes: DeepSpeed or FSDP through accelerate / transformers, and DDP."""

    deepspeed: str | dict[str, Any] | None = Field(
        None,
        description="DeepSpeed config: a JSON file, an inline mapping, or one of Axolotl's "
        "builtin files by name (`deepspeed_configs/zero3_bf16.json`, zero1, zero2, zero3, …). "
        "Needs `pip install deepspeed`; run under `accelerate launch`.",
    )
    fsdp_config: FsdpConfig | None = Field(
        None,
        description="Fully sharded data parallel (FSDP2) settings; takes effect under "
        "`accelerate launch` with several processes.",
    )
    fsdp_version: int | None = Field(None, description="FSDP version: 2 (FSDP1 is gone).")
    fsdp_final_state_dict_type: Literal["FULL_STATE_DICT"] | None = Field(
        None,
        description="Axolotl's older spelling of fsdp_config.final_state_dict_type.",
    )
    fsdp: list[str] | str | None = Field(
        None,
        description="FSDP1's option list of older Axolotl configs (`[full_shard, auto_wrap]`, "
        "`offload`): turned into fsdp_config (full_shard → reshard_after_forward).",
    )
    ddp_find_unused_parameters: bool | None = Field(
        None,
        description="DDP: look for parameters that got no gradient each step (slower; needed "
        "when some parameters are unused).",
    )
    accelerator_config: dict[str, Any] | None = Field(
        None,
        description="accelerate's settings for the Trainer (transformers' `AcceleratorConfig`): "
        "split_batches, dispatch_batches, even_batches, use_seedable_sampler, non_blocking, "
        "use_configured_state, and gradient_accumulation_kwargs (e.g. `{sync_each_batch: "
        "true}`: synchronise gradients at every micro-batch, less memory under FSDP). "
        "gradient_accumulation_kwargs.num_steps is gradient_accumulation_steps here.",
    )

    @field_validator("fsdp_version")
    @classmethod
    def _fsdp2(cls, value: int | None) -> int | None:
        return _only_fsdp2(value)

    @field_validator("fsdp_final_state_dict_type", mode="before")
    @classmethod
    def _full_weights(cls, value: object) -> object:
        return _full_state_dict(value)

    @field_validator("accelerator_config")
    @classmethod
    def _accelerator_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        _known_keys(value or {}, ACCELERATOR_CONFIG_KEYS)
        kwargs = (value or {}).get("gradient_accumulation_kwargs")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError("gradient_accumulation_kwargs: write a mapping, e.g. "
                             "{sync_each_batch: true}")  # fmt: skip
        _known_keys(kwargs or {}, GRADIENT_ACCUMULATION_KEYS, "gradient_accumulation_kwargs: ")
        if "num_steps" in (kwargs or {}):
            raise ValueError("gradient_accumulation_kwargs.num_steps: write "
                             "gradient_accumulation_steps: instead")  # fmt: skip
        return value

    @field_validator("fsdp")
    @classmethod
    def _fsdp_options(cls, value: list[str] | str | None) -> list[str] | str | None:
        options = value.split() if isinstance(value, str) else value or []
        known = ("full_shard", "shard_grad_op", "offload", "auto_wrap")
        unknown = [o for o in options if o not in known]
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not an FSDP2 option; known: {', '.join(known)} "
                "(or write fsdp_config: instead)"
            )
        return value
