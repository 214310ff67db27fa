"""Recipe keys about experiment trackers: TensorBoard in the run directory, Weights &
Biases when named (Axolotl names)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section

REPORT_TARGETS = ("tensorboard", "wandb", "mlflow", "none")


class TrackingSection(Section):
    """Experiment trackers: TensorBoard in the run directory, Weights & Biases when named."""

    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Experiment trackers: tensorboard, wandb, mlflow, or none (no tracker at "
        "all, W&B keys included).",
    )
    use_wandb: bool | None = Field(
        None,
        description="Report to Weights & Biases (`pip install wandb`); on by itself when "
        "wandb_project is named, `false` keeps it off.",
    )
    wandb_project: str | None = Field(
        None, description="W&B project (WANDB_PROJECT); naming it turns W&B reporting on."
    )
    wandb_entity: str | None = Field(
        None, description="W&B team or user the run belongs to (WANDB_ENTITY)."
    )
    wandb_name: str | None = Field(None, description="W&B run name (WANDB_NAME, run_name).")
    wandb_run_id: str | None = Field(
        None, description="W&B run id (WANDB_RUN_ID); also the name when wandb_name is empty."
    )
    wandb_watch: Literal["false", "gradients", "parameters", "all"] | None = Field(
        None, description="Log the model's gradients and/or parameters to W&B (WANDB_WATCH)."
    )
    wandb_log_model: Literal["false", "checkpoint", "end"] | None = Field(
        None,
        description="Upload the model to W&B Artifacts: `checkpoint` at every save, `end` once "
        "(WANDB_LOG_MODEL).",
    )
    wandb_mode: Literal["online", "offline", "disabled", "shared", "dryrun"] | None = Field(
        None,
        description="`offline`: write the W&B run to disk only (sync later with `wandb sync`); "
        "`disabled`: no W&B. Empty: the WANDB_MODE environment variable, else online.",
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

    @field_validator("wandb_watch", "wandb_log_model", mode="before")
    @classmethod
    def _false_as_text(cls, value: object) -> object:
        return "false" if value is False else value  # YAML `false` means W&B's "false"

    def wandb_enabled(self) -> bool:
        """True when the run reports to W&B: use_wandb, or a project named (not turned off)."""
        wanted = self.use_wandb if self.use_wandb is not None else bool(self.wandb_project)
        return wanted and self.wandb_mode != "disabled"
