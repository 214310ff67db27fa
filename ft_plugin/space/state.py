"""What the Space holds, without Gradio: the served model (:class:`ServedModels`: model,
adapters, locks, gate) and one service per job over it.

The services: :attr:`SpaceState.serving` (serve and publish the owner's runs),
:attr:`~SpaceState.comparing` (base vs tuned answers), :attr:`~SpaceState.rating` (blind
ratings), :attr:`~SpaceState.evaluation` (base vs tuned reports), :attr:`~SpaceState.card`
(the Model card tab) and :attr:`~SpaceState.training` (the Train tab's drafts and jobs).
Who may train, serve and publish is ``access`` (default: nobody); the services ask it.

Example (usage, not run as a doctest: it loads a model)::

    state = SpaceState.load("runs/medical-lora", data_dir=Path("space_data"))
    result = state.comparing.compare("What are the warning signs of a stroke?", max_new_tokens=64)
    print(result.base.text, result.tuned.text, result.tuned.stats())
"""

from __future__ import annotations

import random
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .access import Access
from .card import CardService
from .compare import CompareService
from .evaluation import EvaluationService
from .loading import AdapterInfo, load_adapters
from .rating import RatingService
from .served import ServedModels
from .serving import ServingService
from .settings import Limits
from .training.recipe import DEFAULT_BASE
from .training.service import TrainingService


def warm_imports() -> None:
    """Import, once at start-up, what model loading and upload parsing share: two requests
    importing transformers' lazy modules in two threads at once failed one of them
    (``AttributeError: module 'transformers' has no attribute 'PreTrainedTokenizerBase'``)."""
    import peft  # noqa: F401
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase  # noqa: F401

    import ft_plugin.data.jobs  # noqa: F401
    import ft_plugin.data.preview  # noqa: F401
    import ft_plugin.data.reading  # noqa: F401
    import ft_plugin.evaluate.runner  # noqa: F401
    import ft_plugin.evaluate.targets  # noqa: F401

    transformers.models.llama.modeling_llama  # noqa: B018  (the embedded model's classes)


class SpaceState(ServedModels):
    """The served model (loaded once) with the Space's services attached, one per job."""

    def __init__(
        self,
        loaded: Any,
        adapters: list[AdapterInfo],
        *,
        data_dir: Path,
        limits: Limits | None = None,
        ratings_dataset: str | None = None,
        rng: random.Random | None = None,
        access: Access | None = None,
        base_models: Sequence[str] = (),
    ) -> None:
        warm_imports()
        super().__init__(loaded, adapters, limits=limits or Limits())
        self.data_dir = Path(data_dir)
        self.access = access or Access("off")
        self.configured_bases = [str(b) for b in base_models]
        self.work_dir = Path(tempfile.mkdtemp(prefix="ft-plugin-space-"))  # reports, plots
        weakref.finalize(self, shutil.rmtree, self.work_dir, True)
        self._training: TrainingService | None = None
        self.rating = RatingService(self.data_dir, self.limits, ratings_dataset=ratings_dataset)
        self.comparing = CompareService(self, self.rating.pairs, rng or random.SystemRandom())
        self.evaluation = EvaluationService(self, self.work_dir)
        self.card = CardService(self, self.work_dir)
        self.serving = ServingService(self, lambda: self.training, self.access, self.data_dir)

    @classmethod
    def load(
        cls,
        targets: str | Sequence[str],
        *,
        data_dir: Path,
        limits: Limits | None = None,
        ratings_dataset: str | None = None,
        rng: random.Random | None = None,
        access: Access | None = None,
        base_models: Sequence[str] = (),
    ) -> SpaceState:
        """Load one run (or several adapters of one base model) from paths or Hub ids;
        with none, the Space starts empty and serves what its owner trains and serves."""
        targets = [targets] if isinstance(targets, str) else [t for t in targets if t]
        loaded, infos = load_adapters(targets, Path(data_dir)) if targets else (None, [])
        return cls(
            loaded,
            infos,
            data_dir=Path(data_dir),
            limits=limits,
            ratings_dataset=ratings_dataset,
            rng=rng,
            access=access,
            base_models=base_models,
        )

    @property
    def training(self) -> TrainingService:
        """The Train tab's drafts and jobs (created on first use: a Space that only
        compares never starts a job watcher)."""
        if self._training is None:
            self._training = TrainingService(
                self.data_dir, self.limits, self.access, base_models=self.base_models,
                in_use=lambda: {info.run_dir for info in self.adapters.values()},
                lock=self.loading_lock,
            )  # fmt: skip
        return self._training

    def close(self) -> None:
        """Stop a running training (checkpoint first) when the Space shuts down."""
        if self._training is not None:
            self._training.close()

    def base_models(self) -> list[str]:
        """The base models the Space trains: the owner's ``base_models:``, else the
        embedded model and the bases of the served runs."""
        if self.configured_bases:
            return list(self.configured_bases)
        served = [info.recipe.base_model for info in self.adapters.values()]
        return list(dict.fromkeys([DEFAULT_BASE, *served]))
