"""Axolotl's learning-rate schedule keys on transformers' schedulers.

`cosine_min_lr_ratio` alone is transformers' ``cosine_with_min_lr`` (the same curve), so
it is an SFTConfig field. Two schedules transformers has no name for are Axolotl's own
LambdaLR curves, reproduced here and built by the trainer's ``create_scheduler``:
`lr_quadratic_warmup` (quadratic warm-up, then cosine to zero) and
`cosine_constant_lr_ratio` (cosine down to the minimum at that fraction of the run, then
constant). As in Axolotl, all three apply to ``lr_scheduler: cosine`` only, quadratic
warm-up wins over a minimum, and a constant phase needs a (non-zero) minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ft_plugin.config import Recipe

SCHEDULE_KEYS = ("cosine_min_lr_ratio", "cosine_constant_lr_ratio", "lr_quadratic_warmup")


@dataclass(frozen=True)
class LambdaSchedule:
    """One of Axolotl's LambdaLR curves: the factor of learning_rate at each step."""

    quadratic_warmup: bool = False
    min_lr_ratio: float = 0.0
    constant_lr_ratio: float = 1.0

    def factor(self, step: int, *, warmup: int, total: int) -> float:
        """Axolotl 0.21.0's ``utils/schedulers.py`` lambdas (quadratic warm-up cosine, and
        cosine with warm-up, decay and a constant minimum).

        Example:
            >>> tail = LambdaSchedule(min_lr_ratio=0.1, constant_lr_ratio=0.5)
            >>> [round(tail.factor(s, warmup=0, total=10), 3) for s in (0, 5, 9)]
            [1.0, 0.1, 0.1]
            >>> LambdaSchedule(quadratic_warmup=True).factor(1, warmup=4, total=10)
            0.0625
        """
        if step < warmup:
            linear = step / max(1, warmup)
            return linear**2 if self.quadratic_warmup else linear
        if self.quadratic_warmup:
            progress = (step - warmup) / max(1, total - warmup)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        constant_from = int(total * self.constant_lr_ratio)
        progress = (min(step, constant_from) - warmup) / max(1, constant_from - warmup)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, (1 - self.min_lr_ratio) * cosine) + self.min_lr_ratio


def lambda_schedule(recipe: Recipe) -> LambdaSchedule | None:
    """The Axolotl curve a recipe asks for that transformers has no name for, else None."""
    if recipe.lr_scheduler != "cosine":
        return None
    if recipe.lr_quadratic_warmup:
        return LambdaSchedule(quadratic_warmup=True)
    if recipe.cosine_min_lr_ratio and recipe.cosine_constant_lr_ratio:
        return LambdaSchedule(min_lr_ratio=recipe.cosine_min_lr_ratio,
                              constant_lr_ratio=recipe.cosine_constant_lr_ratio)  # fmt: skip
    return None


def scheduler_arguments(recipe: Recipe) -> dict[str, Any]:
    """``lr_scheduler_type`` and its kwargs: `cosine` with `cosine_min_lr_ratio` is
    transformers' ``cosine_with_min_lr`` (``min_lr_rate``), the same curve as Axolotl's.

    Example:
        >>> from ft_plugin.config import Recipe
        >>> r = Recipe.model_validate({"datasets": [{"path": "a.jsonl"}], "cosine_min_lr_ratio": 0.1})
        >>> scheduler_arguments(r)
        {'lr_scheduler_type': 'cosine_with_min_lr', 'lr_scheduler_kwargs': {'min_lr_rate': 0.1}}
    """
    ratio = recipe.cosine_min_lr_ratio
    if recipe.lr_scheduler == "cosine_with_min_lr" or (
        recipe.lr_scheduler == "cosine" and ratio and lambda_schedule(recipe) is None
    ):
        return {"lr_scheduler_type": "cosine_with_min_lr",
                "lr_scheduler_kwargs": {"min_lr_rate": ratio}}  # fmt: skip
    return {"lr_scheduler_type": recipe.lr_scheduler}


def schedule_notes(recipe: Recipe) -> list[str]:
    """One line for each schedule key that does nothing with the rest of the recipe (a
    zero ratio asks for nothing, as in Axolotl)."""
    asked = [key for key in SCHEDULE_KEYS if getattr(recipe, key) not in (None, False)]
    if recipe.lr_scheduler != "cosine":
        applies = ("cosine_min_lr_ratio",) if recipe.lr_scheduler == "cosine_with_min_lr" else ()
        return [f"{key}: no effect here: it shapes lr_scheduler: cosine (this run: "
                f"{recipe.lr_scheduler})" for key in asked if key not in applies]  # fmt: skip
    if recipe.lr_quadratic_warmup:
        return [f"{key}: no effect with lr_quadratic_warmup: the cosine decays to zero "
                "(Axolotl's schedule)" for key in asked if key != "lr_quadratic_warmup"]  # fmt: skip
    if "cosine_constant_lr_ratio" in asked and not recipe.cosine_min_lr_ratio:
        return ["cosine_constant_lr_ratio: no effect without a non-zero cosine_min_lr_ratio "
                "(Axolotl's reading): the cosine decays to zero"]  # fmt: skip
    return []


class LambdaScheduleTrainerMixin:
    """Builds ``lr_schedule`` (a :class:`LambdaSchedule`) as the run's scheduler; without
    one, or when DeepSpeed made the scheduler already, transformers' own is used."""

    lr_schedule: LambdaSchedule | None = None

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.lr_schedule is None or self.lr_scheduler is not None:  # type: ignore[attr-defined]
            return super().create_scheduler(num_training_steps, optimizer)  # type: ignore[misc]
        from torch.optim.lr_scheduler import LambdaLR

        optimizer = optimizer if optimizer is not None else self.optimizer  # type: ignore[attr-defined]
        warmup = self.args.get_warmup_steps(num_training_steps)  # type: ignore[attr-defined]
        factor = partial(self.lr_schedule.factor, warmup=warmup, total=num_training_steps)
        self.lr_scheduler = LambdaLR(optimizer, factor)
        self._created_lr_scheduler = True  # transformers rebuilds it for a second train()
        return self.lr_scheduler
