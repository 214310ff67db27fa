"""The Model card tab's content: the run's card as markdown, its training metrics and curves
(functions of one adapter), and :class:`CardService`, the same for a served adapter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir

from .loading import AdapterInfo
from .served import ServedModels

LOG = logging.getLogger("ft_plugin.space")
CURVES_PNG = "training_curves.png"  # what `ft-plugin eval` leaves in RUN_DIR/eval/


def card_markdown(info: AdapterInfo) -> str:
    """The run's model card (README.md), or one built from the run directory."""
    from huggingface_hub import ModelCard

    readme = RunDir(info.run_dir).card_path
    try:
        if readme.is_file():
            card = ModelCard.load(readme)
            # ft-plugin's card (pushed runs); PEFT's blank template otherwise
            if "ft-plugin" in (card.data.tags or []):
                return card.text
        from ft_plugin.hub.card import RunInfo, build_card

        return build_card(RunInfo(info.run_dir, info.label, info.base_shown)).text
    except Exception as exc:  # noqa: BLE001 - a card is documentation: never fail the tab
        return _short_card(info, exc)


def _short_card(info: AdapterInfo, exc: Exception) -> str:
    first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
    reason = f"{type(exc).__name__}: {first_line}"
    LOG.warning("model card of %s could not be built (%s); showing a short one", info.label, reason)
    return (
        f"# {info.label}\n\n**{info.recipe.adapter}** fine-tuning of "
        f"`{info.base_shown}`. The model card could not be built ({reason}); "
        "training metrics below."
    )


def training_metrics(info: AdapterInfo) -> dict[str, Any]:
    """The run's training metrics (paths as file names, as visitors read them), or none
    when the run has no readable metrics file."""
    from ft_plugin.hub.public import public_value

    try:
        return public_value(RunDir(info.run_dir).metrics())
    except (UserError, OSError, ValueError):
        return {}


def training_curves(info: AdapterInfo, work: Path) -> Path | None:
    """Train and eval loss against the step (drawn into ``work``), or the shipped plot."""
    from ft_plugin.evaluate.report import plot_training_curves

    run = RunDir(info.run_dir)
    if not run.trainer_state_path.is_file():
        shipped = run.eval_dir() / CURVES_PNG
        return shipped if shipped.is_file() else None
    out = work / f"curves-{info.peft_name or 'model'}.png"
    try:
        return plot_training_curves(run.trainer_state_path, out)
    except (OSError, ValueError, KeyError):
        return None


class CardService:
    """The Model card tab's content for the served adapters (curves drawn in ``work_dir``)."""

    def __init__(self, models: ServedModels, work_dir: Path) -> None:
        self.models = models
        self.work_dir = Path(work_dir)

    def markdown(self, adapter: str | None = None) -> str:
        """The run's model card (README.md), or one built from the run directory."""
        return card_markdown(self.models.adapter(adapter))

    def training_metrics(self, adapter: str | None = None) -> dict[str, Any]:
        """The run's training metrics, as visitors read them (:func:`training_metrics`)."""
        return training_metrics(self.models.adapter(adapter))

    def training_curves(self, adapter: str | None = None) -> Path | None:
        """The run's loss curves as a PNG, or None (:func:`training_curves`)."""
        return training_curves(self.models.adapter(adapter), self.work_dir)
