"""`eval:` — what `ft-plugin eval` measures by default for this recipe."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class EvalSection(Section):
    """`ft-plugin eval RUN` reads these when its options are not given (options win)."""

    metrics: list[str] | None = Field(
        None, description="Metrics to report; default: the template's metrics, else perplexity."
    )
    max_samples: int = Field(
        200, ge=0, description="Evaluate a seeded random sample of this many rows; 0: every row."
    )
    max_new_tokens: int = Field(128, ge=1, description="Generation budget for text metrics.")
    baseline: bool = Field(
        True,
        description="Also evaluate the base model for a side-by-side report "
        "(`--no-baseline` skips it).",
    )


class EvaluationSection(Section):
    eval: EvalSection = Field(default_factory=EvalSection, description="Evaluation settings.")
