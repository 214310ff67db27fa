"""Recipe keys about the optimisation loop (Axolotl names)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section

REPORT_TARGETS = ("tensorboard", "wandb", "mlflow", "none")


class TrainingSection(Section):
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
    train_on_inputs: bool = Field(
        False,
        description="Also compute loss on the prompt; by default only the answer carries loss.",
    )
    micro_batch_size: int = Field(1, ge=1, description="Examples per device per step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step."
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
    optimizer: str = Field(
        "adamw_torch",
        description="Optimizer (transformers `optim` names: adamw_torch, adamw_torch_fused, "
        "paged_adamw_8bit, adafactor, sgd, …).",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    bf16: bool | Literal["auto"] = Field(
        "auto",
        description="bfloat16 mixed precision; `auto` uses it only where the hardware is fast at it.",
    )
    fp16: bool = Field(False, description="float16 mixed precision (GPUs without bf16).")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto",
        description="Recompute activations to save memory; `auto` turns it on for big models only.",
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many evaluations without a lower eval loss; keeps the best.",
    )
    eval_steps: int | None = Field(
        None, ge=1, description="Evaluate every N steps (needs an eval set)."
    )
    save_steps: int | None = Field(
        None, ge=1, description="Checkpoint every N steps (default: at eval or end)."
    )
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept on disk.")
    logging_steps: int = Field(5, ge=1, description="Log the loss every N steps.")
    seed: int = Field(42, description="Seed for data order, splits and initialisation.")
    output_dir: str = Field(
        "runs/{recipe}", description="Run directory; `{recipe}` is the recipe name."
    )
    resume: bool | Literal["auto"] = Field(
        False, description="Continue from the latest checkpoint; `auto` does so when one exists."
    )
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Experiment trackers: tensorboard, wandb, mlflow, or none.",
    )
    dataloader_num_workers: int = Field(0, ge=0, description="Data-loading worker processes.")
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (default: all cores)."
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("report_to")
    @classmethod
    def _known_targets(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in REPORT_TARGETS]
        if unknown:
            raise ValueError(
                f"unknown report target {unknown[0]!r}; known: {', '.join(REPORT_TARGETS)}"
            )
        return value
