"""Recipe keys about the optimisation loop (Axolotl names).

Split as Axolotl splits them: the loop and its schedule (`TrainingSection`), when to
evaluate and checkpoint (`ScheduleSection`, schedule.py), trackers (`TrackingSection`,
tracking.py) and several processes (`DistributedSection`, distributed.py). Every key keeps Axolotl's name and value forms; where a
value cannot do its job on this machine, the run says so in one line (engine/sft_config).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Section
from .distributed import DistributedSection
from .schedule import ScheduleSection
from .tracking import TrackingSection

# transformers' `OptimizerNames` (5.x); tests/test_axolotl_training_keys.py checks the list
# against the installed transformers, so that a new name there is a known name here.
TRANSFORMERS_OPTIMIZERS = (
    "adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused", "adafactor",
    "adamw_anyprecision", "adamw_torch_4bit", "adamw_torch_8bit", "ademamix", "sgd", "adagrad",
    "adamw_bnb_8bit", "adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit",
    "paged_adamw_32bit", "paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit",
    "paged_lion_32bit", "paged_lion_8bit", "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit", "galore_adamw", "galore_adamw_8bit", "galore_adafactor",
    "galore_adamw_layerwise", "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise", "lomo",
    "adalomo", "grokadamw", "schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd",
    "apollo_adamw", "apollo_adamw_layerwise", "stable_adamw",
)  # fmt: skip
# Axolotl 0.21.0's `CustomSupportedOptimizers`: its own optimizer classes.
AXOLOTL_OPTIMIZERS = (
    "optimi_adamw", "ao_adamw_4bit", "ao_adamw_8bit", "ao_adamw_fp8", "adopt_adamw", "adamc",
    "came_pytorch", "muon", "muon_8bit", "dion", "sinkgd", "polora", "flash_adamw", "flash_adam",
    "flash_sgd", "flash_sgdw", "flash_lion", "scao", "q_galore_adamw8bit",
)  # fmt: skip
# Optimizers that project gradients onto a low-rank subspace of the modules named by
# `optim_target_modules` (transformers refuses them without it).
LOW_RANK_OPTIMIZERS = ("galore_", "apollo_")


class TrainingSection(ScheduleSection, TrackingSection, DistributedSection):
    sequence_len: int = Field(
        512,
        ge=8,
        description="Maximum tokens per example: longer chat/instruction rows are dropped (counted "
        "on stderr), raw text is cut into windows of this length.",
    )
    sample_packing: bool | Literal["rows", "bins"] = Field(
        False,
        description="Concatenate examples without padding; each attends only to itself. `true` "
        "(= `rows`) packs the micro_batch_size rows of a micro-batch, so a step sees the same rows "
        "as without packing; `bins` is Axolotl's meaning: micro_batch_size bins, each filled up "
        "to sequence_len tokens (fewer, larger steps).",
    )
    sample_packing_sequentially: bool | None = Field(
        None,
        description="`bins`: fill the bins in data order (a row that does not fit starts the next "
        "bin) instead of best-fit decreasing, which reorders rows by length. `rows` packing keeps "
        "the order already.",
    )
    eval_sample_packing: bool | None = Field(
        None,
        description="Pack the eval set too (default: as sample_packing); `false` evaluates on "
        "padded batches.",
    )
    pad_to_sequence_len: bool | None = Field(
        None,
        description="Pad every unpacked batch to sequence_len tokens (constant shapes); packed "
        "batches stay padding-free.",
    )
    train_on_inputs: bool = Field(
        False,
        description="Also compute loss on the prompt; by default only the answer carries loss.",
    )
    use_dft: bool | None = Field(
        None,
        description="Dynamic Fine-Tuning loss: each token's cross-entropy weighted by its own "
        "(detached) probability (TRL's loss_type: dft; arXiv 2508.05629). The eval loss is "
        "the DFT loss too, so no eval perplexity is reported.",
    )
    micro_batch_size: int = Field(1, ge=1, description="Examples per device per step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step."
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description="Axolotl's total batch: rows per optimizer step on each process. When "
        "set, gradient_accumulation_steps is batch_size // micro_batch_size, as Axolotl "
        "computes it (not divided by the number of processes: N processes see N × batch_size "
        "rows a step). Axolotl advises gradient_accumulation_steps instead.",
    )
    eval_batch_size: int | None = Field(
        None,
        ge=1,
        description="Examples per device per evaluation step (default: micro_batch_size).",
    )
    group_by_length: bool | None = Field(
        None,
        description="Draw training batches of similar length (less padding; transformers' "
        "LengthGroupedSampler). The loss may oscillate. No effect with sample_packing.",
    )
    curriculum_sampling: bool | None = Field(
        None,
        description="Train on the rows in order (a sequential sampler, no shuffling): with one "
        "dataset its rows stay in file order, as in Axolotl; several datasets are still "
        "shuffled together unless shuffle_merged_datasets: false.",
    )
    num_epochs: float = Field(1.0, gt=0, description="Passes over the training data.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate.")
    lr_scheduler: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
        "reduce_lr_on_plateau",
        "cosine_with_min_lr",
    ] = Field("cosine", description="Learning-rate schedule (transformers names).")
    cosine_min_lr_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="lr_scheduler: cosine decays to this fraction of learning_rate instead of "
        "zero (e.g. 0.1: 10% of the peak; transformers' cosine_with_min_lr). Also the floor of "
        "lr_scheduler: cosine_with_min_lr.",
    )
    cosine_constant_lr_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="With cosine_min_lr_ratio: the cosine reaches the minimum at this fraction "
        "of the run's steps and stays there (e.g. 0.8: constant over the last 20%), as "
        "Axolotl's schedule does.",
    )
    lr_quadratic_warmup: bool | None = Field(
        None,
        description="lr_scheduler: cosine warms up quadratically ((step / warmup)²) instead of "
        "linearly, then decays to zero (Axolotl's schedule; cosine_min_lr_ratio does not apply).",
    )
    optimizer: str = Field(
        "adamw_torch",
        description="Optimizer: a transformers `optim` name (adamw_torch, adamw_torch_fused, "
        "adamw_bnb_8bit, paged_adamw_8bit, adafactor, sgd, …) or an Axolotl optimizer name. "
        "One that cannot run here (its package missing, Axolotl's own classes) falls back to "
        "adamw_torch with one line saying so.",
    )
    optim_args: str | dict[str, Any] | None = Field(
        None,
        description="Arguments of the optimizer, as `k=v,k2=v2` or a mapping (transformers' "
        "optim_args), e.g. `momentum=0.9` for sgd, `rank=64,update_proj_gap=100` for GaLore.",
    )
    optim_target_modules: list[str] | Literal["all_linear"] | None = Field(
        None,
        description="Modules a GaLore / APOLLO optimizer projects (names, e.g. [q_proj, v_proj], "
        "or all_linear); the other parameters get plain AdamW.",
    )
    adam_beta1: float | None = Field(
        None, ge=0, lt=1, description="Adam β1, first-moment decay (default 0.9)."
    )
    adam_beta2: float | None = Field(
        None, ge=0, lt=1, description="Adam β2, second-moment decay (default 0.999)."
    )
    adam_epsilon: float | None = Field(
        None, gt=0, description="Adam ε, added to the denominator (default 1e-8)."
    )
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    bf16: bool | Literal["auto"] = Field(
        "auto",
        description="bfloat16 mixed precision; `auto` uses it only where the hardware is fast at it.",
    )
    fp16: bool = Field(False, description="float16 mixed precision (GPUs without bf16).")
    tf32: bool | Literal["auto"] = Field(
        "auto",
        description="TF32 matmuls on NVIDIA Ampere or newer GPUs (torch.backends' fp32 "
        "precision, set by transformers); `auto`: where the GPU has them; `false`: off. No "
        "effect on a CPU (the run says so).",
    )
    gradient_checkpointing: bool | Literal["auto", "offload", "offload_disk"] = Field(
        "auto",
        description="Recompute activations to save memory; `auto` turns it on for big models only. "
        "`offload` also keeps the activations saved for the recompute in (pinned) host memory "
        "instead of on the GPU; `offload_disk` runs as `offload`.",
    )
    gradient_checkpointing_kwargs: dict[str, Any] | None = Field(
        None,
        description="Passed to torch.utils.checkpoint, e.g. `{use_reentrant: false}` (default); "
        "`every_n_layers: N` checkpoints every N-th layer only.",
    )
    remove_unused_columns: bool | None = Field(
        None,
        description="Drop dataset columns the model does not take before batching (default: "
        "true); `false` hands every column to the collator.",
    )
    seed: int = Field(42, description="Seed for data order, splits and initialisation.")
    output_dir: str = Field(
        "runs/{recipe}", description="Run directory; `{recipe}` is the recipe name."
    )
    dataloader_num_workers: int = Field(0, ge=0, description="Data-loading worker processes.")
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (default: all cores)."
    )

    @field_validator("optim_args")
    @classmethod
    def _key_value_pairs(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        optim_args_text(value)  # raises on a pair transformers could not split
        return value

    @model_validator(mode="after")
    def _batch_size_sets_accumulation(self) -> TrainingSection:
        # Axolotl's normalize_config: gradient_accumulation_steps = batch_size //
        # micro_batch_size unless set (a different one is a contradiction, reported there).
        steps = (self.batch_size or 0) // self.micro_batch_size
        if steps >= 1 and "gradient_accumulation_steps" not in self.model_fields_set:
            object.__setattr__(self, "gradient_accumulation_steps", steps)
        return self

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        known = (*TRANSFORMERS_OPTIMIZERS, *AXOLOTL_OPTIMIZERS)
        if value in known:
            return value
        from difflib import get_close_matches

        close = get_close_matches(value, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown optimizer {value!r}{hint}; known: {', '.join(known)}")

    def training_contradictions(self) -> list[tuple[tuple[str, ...], str]]:
        """Training keys that contradict each other (Axolotl refuses the same pairs), as (key
        path to blame, message) pairs; `Recipe.contradictions` adds them to its own."""
        has_eval = bool(getattr(self, "val_set_size", 0) or getattr(self, "test_datasets", None))
        found = [
            *_exclusive(self, "warmup_ratio", "warmup_steps"),
            *_exclusive(self, "evals_per_epoch", "eval_steps"),
            *_exclusive(self, "saves_per_epoch", "save_steps"),
            *_exclusive(self, "resume_from_checkpoint", "resume"),
        ]
        for key, steps, per_epoch in (("eval_strategy", "eval_steps", "evals_per_epoch"),
                                      ("save_strategy", "save_steps", "saves_per_epoch")):  # fmt: skip
            strategy = getattr(self, key)
            for other in (steps, per_epoch):
                if getattr(self, other) and strategy not in (None, "steps"):
                    found.append(((key,), f"{strategy!r} contradicts {other}; write "
                                          f"{key}: steps, or remove {other}"))  # fmt: skip
        if self.eval_strategy not in (None, "no") and not has_eval:
            found.append(
                (("eval_strategy",), "needs an eval set: set val_set_size or test_datasets")
            )
        if self.save_strategy == "best" and not has_eval:
            found.append((("save_strategy",), "best saves at evaluations: needs an eval set "
                                              "(val_set_size or test_datasets)"))  # fmt: skip
        elif self.save_strategy == "best" and not (
            self.eval_steps
            or self.evals_per_epoch
            or self.eval_strategy not in (None, "no")
            or self.early_stopping_patience
        ):
            found.append((("save_strategy",), "best saves at evaluations: set eval_steps, "
                                              "evals_per_epoch or eval_strategy"))  # fmt: skip
        found += self._batch_and_optimizer_contradictions()
        fsdp_version = self.fsdp_config.fsdp_version if self.fsdp_config else None
        if self.fsdp_config and self.deepspeed:
            found.append((("deepspeed",), "DeepSpeed and FSDP shard the same model: keep one"))
        if self.fsdp_version and fsdp_version and self.fsdp_version != fsdp_version:
            found.append((("fsdp_version",), "differs from fsdp_config.fsdp_version"))
        return found

    def _batch_and_optimizer_contradictions(self) -> list[tuple[tuple[str, ...], str]]:
        found = []
        if self.batch_size and self.batch_size < self.micro_batch_size:
            found.append((("batch_size",), f"{self.batch_size} is below micro_batch_size "
                                           f"{self.micro_batch_size}; write a multiple of it"))  # fmt: skip
        elif self.batch_size and self.gradient_accumulation_steps != (
            steps := self.batch_size // self.micro_batch_size
        ):
            found.append((("batch_size",), f"asks for gradient_accumulation_steps {steps} "
                          f"({self.batch_size} // micro_batch_size {self.micro_batch_size}), "
                          f"not {self.gradient_accumulation_steps}: keep one"))  # fmt: skip
        if self.optimizer.startswith(LOW_RANK_OPTIMIZERS) and not self.optim_target_modules:
            found.append((("optimizer",), f"{self.optimizer} needs optim_target_modules: the "
                          "modules to project, e.g. [q_proj, v_proj] or all_linear"))  # fmt: skip
        if self.lr_scheduler == "cosine_with_min_lr" and self.cosine_min_lr_ratio is None:
            found.append((("lr_scheduler",), "cosine_with_min_lr needs cosine_min_lr_ratio "
                          "(e.g. 0.1), or write cosine"))  # fmt: skip
        return found


def optim_args_text(value: str | dict[str, Any] | None) -> str | None:
    """`optim_args` as transformers reads it, ``k=v,k2=v2`` (a mapping joined as Axolotl
    joins it; spaces dropped as transformers drops them); ValueError for a pair that
    transformers could not split.

    Example:
        >>> optim_args_text({"momentum": 0.9, "nesterov": True}), optim_args_text("rank = 64")
        ('momentum=0.9,nesterov=True', 'rank=64')
    """
    if not value:
        return None
    if isinstance(value, dict):
        nested = [key for key, item in value.items() if isinstance(item, list | dict)]
        if nested:
            raise ValueError(f"{nested[0]}: write one value (transformers reads optim_args as "
                             "key=value text)")  # fmt: skip
        value = ",".join(f"{key}={item}" for key, item in value.items())
    text = value.replace(" ", "")
    for pair in text.split(","):
        if pair.count("=") != 1 or pair.startswith("=") or pair.endswith("="):
            raise ValueError(f"{pair!r} is not key=value; write e.g. momentum=0.9,nesterov=true "
                             "or a mapping {momentum: 0.9}")  # fmt: skip
    return text


def _exclusive(section: Section, key: str, other: str) -> list[tuple[tuple[str, ...], str]]:
    """Axolotl's "mutually exclusive" pairs: both set (truthy, as Axolotl checks) is refused."""
    if getattr(section, key) and getattr(section, other):
        return [((key,), f"cannot be used with {other}: keep one")]
    return []
