"""Recipe keys about when a run evaluates and saves checkpoints (Axolotl names)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section


def _fraction_or_whole(value: float | None) -> float | None:
    """A step count (whole) or a fraction of the run's steps in (0, 1), as transformers reads it."""
    if value is None or value == int(value):
        return int(value) if value is not None else None
    if 0 < value < 1:
        return value
    raise ValueError(
        f"{value:g} is neither a whole number of steps nor a fraction of the run in (0, 1); "
        f"write e.g. {round(value)} or 0.25"
    )


class ScheduleSection(Section):
    """When to warm up, evaluate and checkpoint (Axolotl's names and value forms)."""

    warmup_steps: int | float = Field(
        0,
        ge=0,
        description="Linear warm-up: a number of optimizer steps, or a fraction of the run's "
        "steps when below 1 (transformers' reading). Cannot be used with warmup_ratio.",
    )
    warmup_ratio: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Linear warm-up as a fraction of the run's optimizer steps (Axolotl); cannot "
        "be used with warmup_steps.",
    )
    eval_steps: int | float | None = Field(
        None,
        gt=0,
        description="Evaluate every N steps, or at every fraction of the run when below 1 (needs "
        "an eval set).",
    )
    evals_per_epoch: int | None = Field(
        None,
        ge=0,
        description="Evaluations per epoch: every 1/(evals_per_epoch × num_epochs) of the run's "
        "steps, as Axolotl computes it (once per epoch at most 1). Exclusive with eval_steps; "
        "0 or no eval set: none.",
    )
    eval_strategy: Literal["no", "steps", "epoch"] | None = Field(
        None,
        description="When to evaluate (transformers' names): `no`, `steps` (every eval_steps), "
        "`epoch`. Empty: inferred from eval_steps / evals_per_epoch.",
    )
    save_steps: int | float | None = Field(
        None,
        gt=0,
        description="Checkpoint every N steps, or at every fraction of the run when below 1 "
        "(default: at each evaluation, else every 100 steps).",
    )
    saves_per_epoch: int | None = Field(
        None,
        ge=0,
        description="Checkpoints per epoch: every 1/(saves_per_epoch × num_epochs) of the run's "
        "steps, as Axolotl computes it. Exclusive with save_steps; 0: unset.",
    )
    save_strategy: Literal["no", "steps", "epoch", "best"] | None = Field(
        None,
        description="When to checkpoint (transformers' names): `no`, `steps`, `epoch`, or `best` "
        "(at an evaluation that lowers eval_loss). Empty: inferred from save_steps / "
        "saves_per_epoch.",
    )
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept on disk.")
    logging_steps: int = Field(5, ge=1, description="Log the loss every N steps.")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many evaluations without a lower eval loss; keeps the best.",
    )
    resume: bool | Literal["auto"] = Field(
        False, description="Continue from the latest checkpoint; `auto` does so when one exists."
    )
    resume_from_checkpoint: str | None = Field(
        None,
        description="Resume from this checkpoint folder (a `checkpoint-N` folder holding "
        "trainer_state.json, e.g. of an earlier run). `--resume` on the command line prefers "
        "this run's own latest checkpoint when it has one. Cannot be used with `resume:`.",
    )
    auto_resume_from_checkpoints: bool | None = Field(
        None,
        description="Axolotl's spelling of `resume: auto`: continue from the run directory's "
        "latest checkpoint when it has one (resume_from_checkpoint, when set, wins).",
    )
    loss_watchdog_threshold: float | None = Field(
        None,
        gt=0,
        description="Stop the run when the logged training loss stays above this for "
        "loss_watchdog_patience logged steps in a row (training broke down; ~2× the starting "
        "loss is a good value). The run is recorded as stopped, with the reason.",
    )
    loss_watchdog_patience: int | None = Field(
        None,
        ge=1,
        description="Logged steps in a row above loss_watchdog_threshold before the run stops "
        "(default 3).",
    )

    @field_validator("warmup_steps", "eval_steps", "save_steps")
    @classmethod
    def _whole_or_fraction(cls, value: float | None) -> float | None:
        return _fraction_or_whole(value)
