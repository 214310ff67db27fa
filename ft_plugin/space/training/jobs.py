"""Training jobs: ``ft-plugin train`` children, one at a time, the rest queued.

A job is a folder ``ROOT/JOB_ID/`` holding the resolved recipe (``NAME.yaml``), the
data it trains on, ``train.log`` (the child's output), ``job.json`` (the job's state as
this module knows it) and ``run/``, the run directory the child writes. A job's live
numbers come from the run directory alone (``status.json``, ``progress.jsonl``), so a
restarted Space reattaches to a child that is still running.

Each child runs in its own session (its own process group), with the Space's
environment minus its secrets (:func:`~ft_plugin.utils.environment.child_environment`: the
Hub token stays in the Space's process, which publishes). Stop sends SIGTERM to the
group (ft-plugin's trainer saves a checkpoint and exits; after ``stop_grace_s`` the
group is killed), and nothing the child started outlives it. States: ``queued``,
``running``, ``stopping`` (after Stop, until the current step ends), ``stopped``,
``failed``, ``done``. Beyond ``keep_finished`` finished jobs, the oldest that are not in
use (served) are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir
from ft_plugin.utils.environment import child_environment
from ft_plugin.utils.io import write_text_atomic

from .job_progress import eta_seconds, last_error_line, latest, log_tail, series

JOB_FILE = "job.json"
LOG_FILE = "train.log"
RUN = "run"
JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
TERMINAL = ("stopped", "failed", "done")


def new_job_id() -> str:
    """A sortable, unguessable id: ``YYYYMMDD-HHMMSS-hex6``.

    Example:
        >>> bool(JOB_ID.match(new_job_id()))
        True
    """
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TrainingJobs:
    """One ``ft-plugin train`` child at a time; later jobs wait in a FIFO queue.

    ``on_finished(run_dir, label)`` is called (in a watcher thread) when a job ends with
    weights written (done, or stopped after its checkpoint); ``label`` names the run
    for people: its recipe name and run id.
    """

    def __init__(
        self,
        root: Path,
        *,
        stop_grace_s: float = 120.0,
        on_finished: Callable[[Path, str], None] | None = None,
        python: str = sys.executable,
        keep_finished: int = 20,
        in_use: Callable[[], set[Path]] = set,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.stop_grace_s = stop_grace_s
        self.on_finished = on_finished
        self.python = python
        self.keep_finished = keep_finished
        self.in_use = in_use  # run directories that must not be deleted (served ones)
        self._lock = threading.RLock()
        self._queue: list[str] = []
        self._running: str | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._finished: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (mtime, status)
        self._reattach()

    # ------------------------------------------------------------------ job files
    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise UserError(f"run id {job_id!r}: not a training run id (YYYYMMDD-HHMMSS-xxxxxx)")
        folder = self.root / job_id
        if not (folder / JOB_FILE).is_file():
            raise UserError(f"run id {job_id}: no such training run in this Space")
        return folder

    def run_dir(self, job_id: str) -> Path:
        return self.folder(job_id) / RUN

    def job(self, job_id: str) -> dict[str, Any]:
        return json.loads((self.folder(job_id) / JOB_FILE).read_text(encoding="utf-8"))

    def _write_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        path = self.root / job_id / JOB_FILE
        job = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        job |= fields
        write_text_atomic(path, json.dumps(job, ensure_ascii=False, indent=1) + "\n")
        return job

    def create(self, job_id: str, recipe_file: Path, request: dict[str, Any]) -> None:
        """Register a prepared job folder (recipe written) and queue it."""
        with self._lock:
            self._write_job(job_id, id=job_id, created=round(time.time(), 3), state="queued",
                            recipe=recipe_file.name, request=request, resume=False)  # fmt: skip
            self._queue.append(job_id)
            self._start_next()

    # ------------------------------------------------------------------ queue
    def queued(self) -> list[str]:
        with self._lock:
            return list(self._queue)

    def running(self) -> str | None:
        with self._lock:
            return self._running

    def _start_next(self) -> None:
        if self._running is not None or not self._queue:
            return
        job_id = self._queue.pop(0)
        self._running = job_id
        try:
            self._launch(job_id)
        except OSError as exc:
            self._running = None
            self._write_job(job_id, state="failed", error=f"could not start training: {exc}")
            self._start_next()

    def _launch(self, job_id: str) -> None:
        folder = self.root / job_id
        job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
        command = [self.python, "-m", "ft_plugin", "train", str(folder / job["recipe"]),
                   "--output-dir", str(folder / RUN)]  # fmt: skip
        if job.get("resume"):
            command.append("--resume")
        env = child_environment(os.environ, PYTHONUNBUFFERED="1")
        with (folder / LOG_FILE).open("ab") as log:
            log.write(
                f"$ ft-plugin train {job['recipe']}{' --resume' if job.get('resume') else ''}\n".encode()
            )
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       cwd=folder, start_new_session=True)  # fmt: skip
        self._processes[job_id] = process
        self._write_job(job_id, state="running", pid=process.pid, started=round(time.time(), 3),
                        stopping=False, returncode=None, error=None)  # fmt: skip
        threading.Thread(target=self._watch, args=(job_id,), daemon=True).start()

    def _watch(self, job_id: str) -> None:
        process = self._processes.get(job_id)
        if process is not None:
            returncode = process.wait()
        else:  # reattached after a restart: not our child, poll it
            pid = self.job(job_id).get("pid")
            while _alive(pid):
                time.sleep(1.0)
            returncode = None
        self._finish(job_id, returncode)

    def _finish(self, job_id: str, returncode: int | None) -> None:
        folder, run = self.root / job_id, RunDir(self.root / job_id / RUN)
        job = self._write_job(job_id, returncode=returncode, ended=round(time.time(), 3))
        status = run.status() or {}
        if status.get("state") in ("done", "stopped") and returncode in (0, None):
            state, error = status["state"], None
        elif job.get("stopping"):
            state, error = "stopped", None
        else:
            state = "failed"
            error = status.get("error") if status.get("state") == "failed" else None
            error = error or last_error_line(folder / LOG_FILE)
            if run.is_run() and status.get("state") != "failed":
                run.write_status("failed", error=error, returncode=returncode)
        self._write_job(job_id, state=state, error=error)
        with self._lock:
            self._processes.pop(job_id, None)
            if self._running == job_id:
                self._running = None
            self._start_next()
            self.prune()
        if (
            self.on_finished is not None
            and state in ("done", "stopped")
            and (run.is_finished() or run.is_stopped())
        ):
            try:
                self.on_finished(run.path, f"{Path(job['recipe']).stem} ({job_id})")
            except Exception as exc:  # the run is trained; serving it is the Space's part
                self._write_job(job_id, serve_error=str(exc).splitlines()[0])

    # ------------------------------------------------------------------ status
    def status(self, job_id: str, log_lines: int = 20) -> dict[str, Any]:
        """What the page and ``/train_status`` show: ``state``, ``step`` / ``max_steps``,
        ``loss``, ``eval_loss`` and ``learning_rate`` as ``[step, value]`` lists, the
        latest ``tokens_per_second`` and ``peak_memory_mb``, ``eta_seconds``,
        ``queue_position`` (1 = next), ``error``, ``log_tail``, ``run_dir`` and, once
        finished, the run's ``metrics``."""
        folder = self.folder(job_id)
        if log_lines == 0:  # a finished job's numbers do not change: read them once
            mtime = (folder / JOB_FILE).stat().st_mtime_ns
            cached = self._finished.get(job_id)
            if cached and cached[0] == mtime:
                return dict(cached[1])
        job, run = self.job(job_id), RunDir(folder / RUN)
        progress = run.progress()
        run_status = run.status() or {}
        last = progress[-1] if progress else {}
        step = last.get("step", run_status.get("step", 0)) or 0
        max_steps = last.get("max_steps", run_status.get("max_steps"))
        out: dict[str, Any] = {
            "run_id": job_id, "state": job.get("state"), "step": step, "max_steps": max_steps,
            "loss": series(progress, "loss"), "eval_loss": series(progress, "eval_loss"),
            "learning_rate": series(progress, "learning_rate"),
            "grad_norm": series(progress, "grad_norm"),
            "tokens_per_second": latest(progress, "tokens_per_second"),
            "peak_memory_mb": latest(progress, "peak_memory_mb"),
            "eta_seconds": eta_seconds(progress, job.get("state")), "queue_position": None,
            "error": job.get("error"), "run_dir": str(run.path), "recipe": job.get("recipe"),
            "created": job.get("created"), "log_tail": log_tail(folder / LOG_FILE, log_lines),
            "serve_error": job.get("serve_error"),
        }  # fmt: skip
        with self._lock:
            if job_id in self._queue:
                out["queue_position"] = self._queue.index(job_id) + 1
        if out["state"] == "running" and job.get("stopping"):
            out["state"] = "stopping"  # SIGTERM sent; the trainer ends its step first
        if run.metrics_path.is_file() and out["state"] in TERMINAL:
            out["metrics"] = run.metrics()
        if out["state"] in TERMINAL and log_lines == 0:
            self._finished[job_id] = ((folder / JOB_FILE).stat().st_mtime_ns, dict(out))
        return out

    def history(self) -> list[dict[str, Any]]:
        """Every job of this Space, newest first, with its final numbers."""
        ids = sorted((p.parent.name for p in self.root.glob(f"*/{JOB_FILE}")), reverse=True)
        return [self.status(job_id, log_lines=0) for job_id in ids if JOB_ID.match(job_id)]

    def prune(self) -> list[str]:
        """Delete the oldest finished jobs beyond ``keep_finished``, except those in use
        (served) and those queued or running; returns the deleted ids."""
        in_use = {Path(p).resolve() for p in self.in_use()}
        with self._lock:
            active = {*self._queue, self._running}
        finished = [job["run_id"] for job in self.history()[self.keep_finished :]
                    if job["state"] in TERMINAL and job["run_id"] not in active]  # fmt: skip
        deleted = []
        for job_id in finished:
            if (self.root / job_id / RUN).resolve() in in_use:
                continue
            shutil.rmtree(self.root / job_id, ignore_errors=True)
            self._finished.pop(job_id, None)
            deleted.append(job_id)
        return deleted

    # ------------------------------------------------------------------ stop, resume
    def stop(self, job_id: str) -> None:
        """Stop a job: a queued one leaves the queue; a running one gets SIGTERM (its
        trainer checkpoints and exits), then SIGKILL after ``stop_grace_s``."""
        self.folder(job_id)
        with self._lock:
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._write_job(job_id, state="stopped", error=None)
                return
            job = self.job(job_id)
            if job.get("state") != "running":
                return
            self._write_job(job_id, stopping=True)
        pid = job.get("pid")
        self._signal(pid, signal.SIGTERM)
        timer = threading.Timer(self.stop_grace_s, self._signal, (pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _signal(pid: int | None, signum: int) -> None:
        if not _alive(pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)  # the child leads its own process group

    def resume(self, job_id: str) -> None:
        """Queue a stopped or failed job again, from its latest checkpoint when it has one."""
        self.folder(job_id)
        with self._lock:
            job = self.job(job_id)
            if job.get("state") not in ("stopped", "failed"):
                raise UserError(
                    f"run {job_id} is {job.get('state')}: only a stopped or failed run resumes"
                )
            checkpoint = RunDir(self.root / job_id / RUN).latest_checkpoint()
            self._write_job(job_id, state="queued", resume=checkpoint is not None, error=None)
            self._queue.append(job_id)
            self._start_next()

    def close(self, timeout: float = 30.0) -> None:
        """Stop every running child (SIGTERM, then SIGKILL after ``timeout``); queued jobs
        stay queued on disk and start again with the Space."""
        with self._lock:
            running = [(job_id, self._processes.get(job_id)) for job_id in list(self._processes)]
        for job_id, process in running:
            self._write_job(job_id, stopping=True)
            self._signal(process.pid if process else None, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, process in running:
            if process is None:
                continue
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(process.pid, signal.SIGKILL)
                process.wait()

    # ------------------------------------------------------------------ restart
    def _reattach(self) -> None:
        """After a restart: watch children still running, finish those that ended, and
        queue again the jobs that were waiting (oldest first)."""
        jobs = []
        for path in sorted(self.root.glob(f"*/{JOB_FILE}")):
            try:
                jobs.append(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                continue
        for job in jobs:
            if job.get("state") == "running":
                if _alive(job.get("pid")) and self._running is None:
                    self._running = job["id"]
                    threading.Thread(target=self._watch, args=(job["id"],), daemon=True).start()
                else:
                    self._finish(job["id"], None)
        self._queue.extend(job["id"] for job in jobs if job.get("state") == "queued")
        with self._lock:
            self._start_next()
