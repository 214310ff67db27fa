"""Our extensions beyond Axolotl: multi-stage training, EWC, replay."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from .base import Section
from .datasets import DatasetSection

# Keys a stage may override; model, method and Hub keys stay those of the recipe, so
# that every stage trains the same adapter on the same base.
STAGE_KEYS = (
    "datasets", "test_datasets", "val_set_size", "sequence_len", "sample_packing", "train_on_inputs",
    "micro_batch_size", "gradient_accumulation_steps", "num_epochs", "max_steps", "learning_rate",
    "lr_scheduler", "optimizer", "warmup_steps", "warmup_ratio", "weight_decay", "max_grad_norm",
    "early_stopping_patience", "eval_steps", "evals_per_epoch", "save_steps", "saves_per_epoch",
    "logging_steps", "ewc", "replay",
    # a stage may tune on preferences (SFT, then DPO): rl: and its keys
    "rl", "rl_beta", "dpo_loss_type", "dpo_loss_weights", "dpo_label_smoothing",
    "dpo_use_weighting", "dpo_ld_alpha", "precompute_ref_log_probs", "orpo_alpha",
    "kto_desirable_weight", "kto_undesirable_weight", "simpo_gamma", "cpo_alpha",
)  # fmt: skip


class StageSection(Section):
    """One stage of progressive training: a name and the keys it overrides."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Stage name (a folder name)."
    )

    def overrides(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EwcSection(Section):
    """Elastic weight consolidation against forgetting (Kirkpatrick et al., 2017)."""

    model_config = ConfigDict(populate_by_name=True)
    lambda_: float = Field(
        alias="lambda", gt=0, description="Penalty strength λ in (λ/2)·Σ F·(θ − θ*)²."
    )
    fisher_samples: int = Field(
        200, ge=1, description="Training rows of the previous run used for the Fisher."
    )
    previous: str | None = Field(
        None,
        description="Run directory (or hf://OWNER/REPO) whose weights to protect; default lora_model_dir.",
    )


class ReplaySection(Section):
    """Rehearsal: mix a share of earlier or general data into training."""

    datasets: list[DatasetSection] = Field(min_length=1, description="Data to replay.")
    ratio: float = Field(
        0.1, gt=0, lt=1, description="Replayed rows as a share of the training rows."
    )


class TaskAdapterSection(StageSection):
    """One per-task adapter: a name and the keys it overrides (its datasets, usually)."""


class ExtensionsSection(Section):
    stages: list[StageSection] | None = Field(
        None,
        description="Progressive training: each stage starts from the previous stage's adapter.",
    )
    ewc: EwcSection | None = Field(
        None, description="EWC penalty against forgetting a previous run."
    )
    replay: ReplaySection | None = Field(None, description="Replay earlier data while training.")
    adapters: list[TaskAdapterSection] | None = Field(
        None,
        description="Parameter isolation: one adapter per task on the same base, in RUN_DIR/NAME/, "
        "plus a router that picks one per prompt.",
    )
