"""Serving and publishing, without Gradio: the owner serves a finished run of the Train tab
beside the served ones (or alone), or publishes it to the Hub.

Both belong to the Space's owner: the training service's ``finished_run`` and ``publish``
ask :class:`~ft_plugin.space.access.Access` first, so the page and the API cannot differ.

Example (usage, not run as a doctest: it needs a finished run)::

    label = state.serving.serve_run(OWNER, run_id)  # now in Compare, Evaluate and Rate
    state.serving.publish(OWNER, run_id, "me/medical-lora", private=True)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from .access import Access, Caller
from .loading import load_adapters
from .served import ServedModels
from .training.service import TrainingService


class ServingService:
    """Serve and publish the owner's finished runs on ``models``; ``training()`` is the
    Train tab's service (created on first use), ``data_dir`` the Hub adapters' cache."""

    def __init__(
        self,
        models: ServedModels,
        training: Callable[[], TrainingService],
        access: Access,
        data_dir: Path,
    ) -> None:
        self.models = models
        self.training_service = training
        self.access = access
        self.data_dir = Path(data_dir)
        self.notes: list[str] = []  # what serving a newly trained run changed

    def serve_run(self, caller: Caller, run_id: str, *, replace: bool = False) -> str:
        """Serve a finished run of the Train tab (the owner's choice) beside the loaded
        ones (one base model, one PEFT type), or alone with ``replace``; its label."""
        training = self.training_service()
        run_dir = training.finished_run(caller, run_id, "serve")
        recipe = training.jobs.job(run_id).get("recipe", "run")
        label = f"{Path(recipe).stem} ({run_id})"
        self._serve(run_dir, label, replace=replace)
        return label

    def publish(
        self, caller: Caller, run_id: str, repo_id: str, *, private: bool = True,
        overwrite: bool = False,
    ) -> Any:  # fmt: skip
        """Publish a finished run of the Train tab (the owner's) with the Space's token,
        under the owners' namespaces on a Space with Hugging Face sign-in."""
        training = self.training_service()
        return training.publish(caller, run_id, repo_id, private=private, overwrite=overwrite,
                                namespaces=self.access.publish_namespaces())  # fmt: skip

    def _serve(self, run_dir: Path, label: str, *, replace: bool) -> None:
        models = self.models
        kept = [] if replace else [
            (info.source, info.label) for info in models.adapters.values() if info.label != label
        ]  # fmt: skip
        sources, labels = [s for s, _ in kept], [name for _, name in kept]
        with models.loading_lock:
            try:
                loaded, infos = load_adapters(
                    [*sources, str(run_dir)], self.data_dir, [*labels, label]
                )
            except UserError as exc:
                if not sources:
                    raise
                raise UserError(
                    f"{label} cannot be served beside the runs served now ({exc}); "
                    "tick Replace to serve it alone"
                ) from None
            models.replace_models(loaded, infos)
        self.notes.append(f"now serving {', '.join(models.adapters)}")
