"""Weights & Biases for a run, from Axolotl's `wandb_*` keys.

transformers' ``WandbCallback`` (``report_to: [wandb]``) reads its settings from the
``WANDB_*`` environment variables, as Axolotl sets them from the same keys: the variables
are set for the run (a recipe value wins over the shell's) and put back when it ends,
when the W&B run is also finished so that the next run in the process opens its own. The
API key is W&B's business: it is read by ``wandb`` from ``WANDB_API_KEY`` or ``wandb
login`` and never by us, so no line we print can carry it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import UserError

if TYPE_CHECKING:
    from ft_plugin.config import Recipe

# Recipe key -> the environment variable W&B (or transformers' WandbCallback) reads.
WANDB_VARIABLES = {
    "wandb_project": "WANDB_PROJECT",
    "wandb_entity": "WANDB_ENTITY",
    "wandb_name": "WANDB_NAME",
    "wandb_run_id": "WANDB_RUN_ID",
    "wandb_watch": "WANDB_WATCH",
    "wandb_log_model": "WANDB_LOG_MODEL",
    "wandb_mode": "WANDB_MODE",
}


def wandb_environment(recipe: Recipe) -> dict[str, str]:
    """The ``WANDB_*`` variables a recipe sets (the run id names the run when no name is given).

    Example:
        >>> from ft_plugin.config import Recipe
        >>> r = Recipe.model_validate({"datasets": [{"path": "x"}], "wandb_project": "p",
        ...                            "wandb_run_id": "r1", "wandb_mode": "offline"})
        >>> wandb_environment(r)
        {'WANDB_PROJECT': 'p', 'WANDB_NAME': 'r1', 'WANDB_RUN_ID': 'r1', 'WANDB_MODE': 'offline'}
    """
    values = {key: getattr(recipe, key) for key in WANDB_VARIABLES}
    values["wandb_name"] = values["wandb_name"] or values["wandb_run_id"]
    return {WANDB_VARIABLES[k]: str(v) for k, v in values.items() if v is not None}


@dataclass
class TrackerSession:
    """What a run changed in the environment for its trackers, to put back at its end."""

    previous: dict[str, str | None] = field(default_factory=dict)
    wandb: bool = False

    def close(self) -> None:
        """Finish the W&B run this run opened and restore the ``WANDB_*`` variables."""
        if self.wandb and importlib.util.find_spec("wandb") is not None:
            import wandb

            if wandb.run is not None:
                wandb.finish()
        for name, value in self.previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.previous.clear()


def open_trackers(recipe: Recipe) -> TrackerSession:
    """Set the run's ``WANDB_*`` variables when it reports to W&B (wandb_project, use_wandb
    or ``report_to: [wandb]``); refused in one line when ``wandb`` is not installed.
    Nothing changes for a run that does not use W&B."""
    session = TrackerSession()
    if "wandb" not in report_targets(recipe):
        return session
    if importlib.util.find_spec("wandb") is None:
        raise UserError(
            "wandb_project / use_wandb: Weights & Biases is not installed: pip install wandb "
            "(or remove the wandb_* keys, or write use_wandb: false)"
        )
    for name, value in wandb_environment(recipe).items():
        session.previous[name] = os.environ.get(name)
        os.environ[name] = value
    session.wandb = True
    return session


def wandb_line(recipe: Recipe) -> str:
    """One line saying where the run reports in W&B (names only: no credentials)."""
    mode = recipe.wandb_mode or os.environ.get("WANDB_MODE") or "online"
    where = recipe.wandb_project or os.environ.get("WANDB_PROJECT") or "huggingface"
    if recipe.wandb_entity:
        where = f"{recipe.wandb_entity}/{where}"
    name = recipe.wandb_name or recipe.wandb_run_id
    return f"reporting to W&B project {where}" + (f", run {name}" if name else "") + f" ({mode})"


def report_targets(recipe: Recipe) -> list[str]:
    """TrainingArguments' ``report_to``: the recipe's trackers, plus wandb when W&B is on;
    none at all for ``report_to: none`` (an explicit "no trackers" wins over wandb_*)."""
    if "none" in recipe.report_to:
        return []
    targets = list(recipe.report_to)
    if recipe.wandb_enabled() and "wandb" not in targets:
        targets.append("wandb")
    return targets


def close_trackers(trainer: Any) -> None:
    """End what :func:`open_trackers` started for ``trainer``'s run (``engine.run`` calls it)."""
    session = getattr(trainer, "tracker_session", None)
    if session is not None:
        session.close()
