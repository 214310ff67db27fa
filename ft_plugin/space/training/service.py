"""The Train tab's work without Gradio: a draft (upload, mapping, preview, cleaning,
recipe, estimate) and the jobs (start, status, stop, resume, history).

Example (usage, not run as a doctest: it needs a model, files or the Hub)::

    training = TrainingService(Path("space_data"), Limits())
    run_id = training.start("rows.csv", "medical", {"instruction": "ask", "output": "answer"},
                            overrides={"max_steps": 5})
    training.status(run_id)["state"]  # 'running'
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from ..settings import Limits
from . import data as data_step
from .jobs import RUN, TrainingJobs, new_job_id
from .recipe import DEFAULT_BASE, TrainRequest, build_recipe, check_caps

TRAIN_DIR = "train"  # DATA_DIR/train/JOB_ID/: one folder per training job


def _safe_name(name: str) -> str:
    """A file name with no path and no odd characters (letters of any script are kept).

    Example:
        >>> _safe_name("../内科 data (1).csv")
        '内科_data__1_.csv'
    """
    return re.sub(r"[^\w.-]", "_", Path(name).name).lstrip(".") or "data"


class TrainingService:
    """Drafts and jobs of one Space; ``on_finished(run_dir, label)`` serves a finished run."""

    def __init__(
        self,
        data_dir: Path,
        limits: Limits,
        on_finished: Callable[[Path, str], None] | None = None,
    ) -> None:
        self.limits = limits
        self.jobs = TrainingJobs(
            Path(data_dir) / TRAIN_DIR, stop_grace_s=limits.stop_grace_s, on_finished=on_finished
        )
        self._drafts = Path(tempfile.mkdtemp(prefix="ft-plugin-drafts-"))

    # ------------------------------------------------------------------ the draft
    def upload(self, file: str | None, template: str) -> data_step.Upload:
        """Read an uploaded file (a copy kept for this page) or, with none, the sample."""
        return self._read_copy(
            file, template, lambda: Path(tempfile.mkdtemp(prefix="draft-", dir=self._drafts))
        )

    def _read_copy(
        self, file: str | None, template: str, folder: Callable[[], Path]
    ) -> data_step.Upload:
        """The template's sample, or a checked copy of ``file`` in ``folder()``, read."""
        if not template:
            raise UserError("template: choose a domain template first")
        if not file:
            return data_step.inspect_upload(None, template, self.limits)
        source = Path(file)
        data_step.check_file(source, self.limits)
        target = folder()
        target.mkdir(parents=True, exist_ok=True)
        copy = target / _safe_name(source.name)
        shutil.copyfile(source, copy)
        upload = data_step.inspect_upload(copy, template, self.limits)
        upload.shown = source.name
        return upload

    def recipe_yaml(self, upload: data_step.Upload, request: TrainRequest) -> str:
        """The recipe the user downloads: paths as they would type them on their machine
        (the file's name, ``runs/NAME``), everything else as the job will run it."""
        local = TrainRequest(**{**asdict(request), "data": upload.shown})
        where = Path("runs") / f"space-{request.template}-{request.method}"
        loaded = build_recipe(local, where, self.limits)
        check_caps(loaded.recipe, upload.rows, self.limits)
        return loaded.to_yaml()

    def estimate(self, request: TrainRequest) -> str:
        """Trainable parameters and memory, before anything trains (one line)."""
        from ft_plugin.methods.estimate import estimate_training

        loaded = build_recipe(request, Path("runs") / "space-run", self.limits)
        return estimate_training(loaded.recipe).summary()

    # ------------------------------------------------------------------ jobs
    def start(
        self,
        file: str | None,
        template: str,
        fields: dict[str, str] | None = None,
        method: str = "lora",
        base_model: str = DEFAULT_BASE,
        overrides: dict[str, Any] | None = None,
    ) -> str:
        """Check everything, write the job's recipe and data, queue it; the run id.

        A refused request leaves nothing behind."""
        if len(self.jobs.queued()) >= self.limits.max_train_queue:
            raise UserError(
                f"the training queue is full ({self.limits.max_train_queue} runs waiting); "
                "try again when one has finished"
            )
        job_id = new_job_id()
        folder = self.jobs.root / job_id
        folder.mkdir(parents=True)
        try:
            upload = self._read_copy(file, template, lambda: folder / "data")
            request = TrainRequest(
                data=upload.source, template=upload.template,
                fields=data_step.checked_mapping(upload, fields or upload.mapping),
                method=method or "lora", base_model=base_model or DEFAULT_BASE,
                overrides=dict(overrides or {}), encoding=upload.encoding,
            )  # fmt: skip
            loaded = build_recipe(request, folder / RUN, self.limits)
            check_caps(loaded.recipe, upload.rows, self.limits)
            recipe_file = folder / f"{loaded.name}.yaml"
            recipe_file.write_text(loaded.to_yaml(), encoding="utf-8")
            shown = {**asdict(request), "data": upload.shown}
            self.jobs.create(job_id, recipe_file, shown)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        return self.jobs.status(job_id)

    def stop(self, job_id: str) -> dict[str, Any]:
        self.jobs.stop(job_id)
        return self.jobs.status(job_id)

    def resume(self, job_id: str) -> dict[str, Any]:
        self.jobs.resume(job_id)
        return self.jobs.status(job_id)

    def history(self) -> list[dict[str, Any]]:
        return self.jobs.history()

    def publish(self, job_id: str, repo_id: str, *, private: bool = True) -> Any:
        """Push a finished run with its model card (``ft-plugin push``); the token is the
        environment's (a Space secret ``HF_TOKEN``), never shown or written."""
        from huggingface_hub import get_token

        from ft_plugin.hub.publish import push_run

        status = self.jobs.status(job_id, log_lines=0)
        if status["state"] not in ("done", "stopped") or not status.get("metrics"):
            raise UserError(f"run {job_id} is {status['state']}: only a finished run is published")
        if not repo_id or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id.strip()):
            raise UserError(f"repo id: {repo_id!r} is not OWNER/NAME")
        if not get_token():
            raise UserError(
                "no Hub token: set HF_TOKEN in the Space's secrets (or the environment)"
            )
        return push_run(Path(status["run_dir"]), repo_id.strip(), private=private)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the running child (SIGTERM, SIGKILL after ``timeout``) and drop the drafts."""
        self.jobs.close(timeout)
        shutil.rmtree(self._drafts, ignore_errors=True)
