"""The Train tab's work without Gradio: a draft (upload, mapping, preview, cleaning,
recipe, estimate) and the jobs (start, status, stop, resume, history, publish).

All of it belongs to the Space's owner: every public method takes the :class:`Caller`
first and asks :class:`Access` before it reads, starts or writes anything, so the page
and the API cannot differ. Base models come only from the owner's list, data only from
the upload, runs land only under ``DATA_DIR/train/``.

Example (usage, not run as a doctest: it needs a model, files or the Hub)::

    training = TrainingService(Path("space_data"), Limits(), Access("local"))
    run_id = training.start(OWNER, TrainRequest(
        data="rows.csv", template="medical", fields={"instruction": "ask", "output": "answer"},
        overrides={"max_steps": 5}))
    training.status(OWNER, run_id)["state"]  # 'running'
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from ..access import Access, Caller
from ..settings import Limits
from . import data as data_step
from .jobs import RUN, TrainingJobs, new_job_id
from .recipe import DEFAULT_BASE, TrainRequest, build_recipe, check_base_model, check_caps

DRAFTS_KEPT = 8  # the owner's latest uploads kept for the page; older drafts are deleted

TRAIN_DIR = "train"  # DATA_DIR/train/JOB_ID/: one folder per training job


def _safe_name(name: str) -> str:
    """A file name with no path and no odd characters (letters of any script are kept).

    Example:
        >>> _safe_name("../内科 data (1).csv")
        '内科_data__1_.csv'
    """
    return re.sub(r"[^\w.-]", "_", Path(name).name).lstrip(".") or "data"


def _check_line(check: dict[str, Any]) -> str:
    """An export's check as the page shows it (from its ``export.json`` record)."""
    line = (f"Checked against the run: {check['agreeing']}/{check['answered']} greedy answers the "
            f"same, held-out perplexity {check['perplexity_export']:.3f} vs "
            f"{check['perplexity_run']:.3f} ({check['perplexity_change']:+.2%}).")  # fmt: skip
    if check.get("prompts_tokenized_otherwise"):
        line += (f" llama.cpp tokenizes {check['prompts_tokenized_otherwise']} of {check['rows']} "
                 "held-out prompts otherwise than the run.")  # fmt: skip
    return line


class TrainingService:
    """Drafts and jobs of one Space, for its owner.

    ``base_models()`` lists the models the owner lets it train (read at each request:
    serving a run adds its base); ``on_finished(run_dir, label)`` hears of a finished
    run (serving it is the owner's choice, made with ``ServingService.serve_run``);
    ``in_use()`` names the run directories pruning must keep (the served ones).
    """

    def __init__(
        self,
        data_dir: Path,
        limits: Limits,
        access: Access,
        base_models: Callable[[], list[str]] = lambda: [DEFAULT_BASE],
        on_finished: Callable[[Path, str], None] | None = None,
        in_use: Callable[[], set[Path]] = set,
        lock: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        self.limits = limits
        self.access = access
        self.base_models = base_models
        self.loading = lock or contextlib.nullcontext()  # tokenizer and model loads, serialised
        self.jobs = TrainingJobs(
            Path(data_dir) / TRAIN_DIR,
            stop_grace_s=limits.stop_grace_s,
            on_finished=on_finished,
            keep_finished=limits.keep_train_runs,
            in_use=in_use,
        )
        self._drafts = Path(tempfile.mkdtemp(prefix="ft-plugin-drafts-"))

    # ------------------------------------------------------------------ the draft
    def upload(self, caller: Caller, file: str | None, template: str) -> data_step.Upload:
        """Read an uploaded file (a copy kept for this page) or, with none, the sample."""
        self.access.require_owner(caller, "train")
        self._prune_drafts()
        with self.loading:
            return self._read_copy(
                file, template, lambda: Path(tempfile.mkdtemp(prefix="draft-", dir=self._drafts))
            )

    def _prune_drafts(self) -> None:
        drafts = sorted(self._drafts.glob("draft-*"), key=lambda p: p.stat().st_mtime)
        for old in drafts[: max(0, len(drafts) - DRAFTS_KEPT + 1)]:
            shutil.rmtree(old, ignore_errors=True)

    def _read_copy(
        self, file: str | None, template: str, folder: Callable[[], Path]
    ) -> data_step.Upload:
        """The template's sample, or a checked copy of ``file`` in ``folder()``, read."""
        from ft_plugin import registry

        if not template:
            raise UserError("template: choose a domain template first")
        if template not in registry.templates():  # never a path or an hf:// reference
            raise UserError(
                f"template {template!r:.80}: not one of this Space's templates: "
                f"{', '.join(registry.templates())}"
            )
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

    def _checked(self, request: TrainRequest) -> TrainRequest:
        check_base_model(request.base_model, self.base_models())
        return request

    def preview(self, caller: Caller, upload: data_step.Upload, request: TrainRequest) -> str:
        """The first rows as trained (``templates preview``), with the base's tokenizer."""
        self.access.require_owner(caller, "train")
        request = self._checked(request)
        sequence_len = int(request.overrides.get("sequence_len") or 512)
        with self.loading:
            return data_step.preview(upload, request.fields, request.base_model, sequence_len)

    def clean(
        self, caller: Caller, upload: data_step.Upload, request: TrainRequest
    ) -> data_step.Cleaned:
        """The template's cleaning of the upload, beside its draft copy."""
        self.access.require_owner(caller, "train")
        request = self._checked(request)
        sequence_len = int(request.overrides.get("sequence_len") or 512)
        if upload.source.startswith(data_step.SAMPLE):
            parent = Path(tempfile.mkdtemp(prefix="draft-", dir=self._drafts))
        else:
            parent = Path(upload.source).parent
        folder = Path(tempfile.mkdtemp(prefix="clean-", dir=parent))
        with self.loading:
            return data_step.clean(upload, request.fields, request.base_model, sequence_len, folder)

    def recipe_yaml(self, caller: Caller, upload: data_step.Upload, request: TrainRequest) -> str:
        """The recipe the user downloads: paths as they would type them on their machine
        (the file's name, ``runs/NAME``), everything else as the job will run it."""
        self.access.require_owner(caller, "train")
        local = TrainRequest(**{**asdict(self._checked(request)), "data": upload.shown})
        where = Path("runs") / f"space-{request.template}-{request.method}"
        loaded = build_recipe(local, where, self.limits)
        check_caps(loaded.recipe, upload.rows, self.limits)
        return loaded.to_yaml()

    def estimate(self, caller: Caller, request: TrainRequest) -> str:
        """Trainable parameters and memory, before anything trains (one line)."""
        from ft_plugin.methods.estimate import estimate_training

        self.access.require_owner(caller, "train")
        loaded = build_recipe(self._checked(request), Path("runs") / "space-run", self.limits)
        with self.loading:
            return estimate_training(loaded.recipe).summary()

    # ------------------------------------------------------------------ jobs
    def start(self, caller: Caller, request: TrainRequest) -> str:
        """Check everything, write the job's recipe and data, queue it; the run id.

        ``request.data`` is the file to train on (copied into the job), or empty or
        ``builtin:…`` for the template's sample; empty ``fields`` take the upload's own
        mapping. A refused request leaves nothing behind.

        Example (usage, not run as a doctest: it needs a model and files)::

            service.start(OWNER, TrainRequest(data="rows.csv", template="medical"))
        """
        self.access.require_owner(caller, "train")
        if len(self.jobs.queued()) >= self.limits.max_train_queue:
            raise UserError(
                f"the training queue is full ({self.limits.max_train_queue} runs waiting); "
                "try again when one has finished"
            )
        base_model = request.base_model or DEFAULT_BASE
        check_base_model(base_model, self.base_models())
        file = None if request.data.startswith(data_step.SAMPLE) else request.data or None
        job_id = new_job_id()
        folder = self.jobs.root / job_id
        folder.mkdir(parents=True)
        try:
            with self.loading:
                upload = self._read_copy(file, request.template, lambda: folder / "data")
            request = replace(
                request, data=upload.source, template=upload.template,
                fields=data_step.checked_mapping(upload, request.fields or upload.mapping),
                method=request.method or "lora", base_model=base_model,
                overrides=dict(request.overrides or {}), encoding=upload.encoding,
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

    def start_on_ratings(
        self,
        caller: Caller,
        served: Any,
        records: list[dict[str, Any]],
        overrides: dict[str, Any] | None = None,
    ) -> str:
        """ "Train on ratings": DPO from the served adapter ``served`` (an ``AdapterInfo``)
        on the pairs its ``records`` (the Rate tab's) give; the job id. Status, stop and
        resume are those of any job. A refused request leaves nothing behind.

        Example (usage, not run as a doctest: it needs a served run and ratings)::

            service.start_on_ratings(OWNER, state.adapter("medical-lora"), state.rating.records())
        """
        from ft_plugin.evaluate.preference_pairs import write_pairs

        from .ratings_run import PAIRS_FILE, ratings_pairs, ratings_recipe

        self.access.require_owner(caller, "train")
        if len(self.jobs.queued()) >= self.limits.max_train_queue:
            raise UserError(f"the training queue is full ({self.limits.max_train_queue} runs "
                            "waiting); try again when one has finished")  # fmt: skip
        pairs = ratings_pairs(records, served.label)
        job_id = new_job_id()
        folder = self.jobs.root / job_id
        (folder / "data").mkdir(parents=True)
        try:
            pairs_file, _ = write_pairs(pairs, folder / "data" / PAIRS_FILE)
            loaded = ratings_recipe(served, pairs_file, folder / RUN, dict(overrides or {}))
            check_caps(loaded.recipe, len(pairs.pairs), self.limits)
            recipe_file = folder / f"{loaded.name}.yaml"
            recipe_file.write_text(loaded.to_yaml(), encoding="utf-8")
            shown = {"data": f"{len(pairs.pairs)} pairs from the Rate tab", "method": "dpo",
                     "template": served.label, "base_model": served.recipe.base_model,
                     "overrides": dict(overrides or {}), "pairs": pairs.report()}  # fmt: skip
            self.jobs.create(job_id, recipe_file, shown)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return job_id

    def status(self, caller: Caller, job_id: str) -> dict[str, Any]:
        self.access.require_owner(caller, "status")
        return self.jobs.status(job_id)

    def stop(self, caller: Caller, job_id: str) -> dict[str, Any]:
        self.access.require_owner(caller, "stop")
        self.jobs.stop(job_id)
        return self.jobs.status(job_id)

    def resume(self, caller: Caller, job_id: str) -> dict[str, Any]:
        self.access.require_owner(caller, "resume")
        self.jobs.resume(job_id)
        return self.jobs.status(job_id)

    def history(self, caller: Caller) -> list[dict[str, Any]]:
        self.access.require_owner(caller, "status")
        return self.jobs.history()

    def finished_run(self, caller: Caller, job_id: str, action: str) -> Path:
        """The run directory of a finished (done, or stopped with weights) job."""
        self.access.require_owner(caller, action)
        status = self.jobs.status(job_id, log_lines=0)
        if status["state"] not in ("done", "stopped") or not status.get("metrics"):
            raise UserError(f"run {job_id} is {status['state']}: only a finished run can be used")
        return self.jobs.run_dir(job_id)

    def publish(
        self,
        caller: Caller,
        job_id: str,
        repo_id: str,
        *,
        private: bool = True,
        overwrite: bool = False,
        namespaces: list[str] | None = None,
    ) -> Any:
        """Push a finished run with its model card (``ft-plugin push``) under one of
        ``namespaces`` (the owner's); the token is the environment's (a Space secret
        ``HF_TOKEN``), never shown, written or passed to a child."""
        from huggingface_hub import get_token

        from ft_plugin.hub.publish import push_run

        run_dir = self.finished_run(caller, job_id, "publish")
        if not repo_id or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id.strip()):
            raise UserError(f"repo id: {repo_id!r:.80} is not OWNER/NAME")
        if not get_token():
            raise UserError(
                "no Hub token: set HF_TOKEN in the Space's secrets (or the environment)"
            )
        return push_run(run_dir, repo_id.strip(), private=private, overwrite=overwrite,
                        namespaces=namespaces)  # fmt: skip

    def export_gguf(self, caller: Caller, job_id: str, quant: str = "q4_k_m") -> tuple[Path, str]:
        """A finished run as one GGUF file (``ft-plugin export --format gguf``), checked
        against the run; a link to the file for download and the check's summary. An
        export made before is reused.

        Example (usage, not run as a doctest: it needs a finished run and llama.cpp)::

            service.export_gguf(OWNER, run_id, "q8_0")  # (PosixPath('…/run-q8_0.gguf'), '4/4 …')
        """
        from ft_plugin.export import QUANTS, export_run
        from ft_plugin.export.run import exported_files, gguf_name

        run_dir = self.finished_run(caller, job_id, "export")
        if quant not in QUANTS:
            raise UserError(f"quantization {quant!r:.20}: choose one of {', '.join(QUANTS)}")
        folder, name = run_dir / "export", gguf_name(run_dir, quant)
        record = exported_files(folder).get(name)
        if record is None or not (folder / name).is_file():
            # A tokenizer difference is kept and shown: the owner asked for the file.
            with self.loading:
                export_run(run_dir, "gguf", quant=quant, allow_tokenizer_difference=True)
            record = exported_files(folder)[name]
        return self._servable(folder / name), _check_line(record["check"])

    def _servable(self, path: Path) -> Path:
        """``path`` linked (or copied) into the service's temporary folder: Gradio serves
        files from there, never from the Space's data folder."""
        target = Path(tempfile.mkdtemp(prefix="download-", dir=self._drafts)) / path.name
        try:
            os.link(path, target)
        except OSError:  # another file system
            shutil.copyfile(path, target)
        return target

    def close(self, timeout: float = 30.0) -> None:
        """Stop the running child (SIGTERM, SIGKILL after ``timeout``) and drop the drafts."""
        self.jobs.close(timeout)
        shutil.rmtree(self._drafts, ignore_errors=True)
