"""The run directory: the one contract between train, evaluate, hub and the Space.

Training writes a run directory; everything after it reads one. This module is the only
place that spells its file names (DESIGN.md, "Run directory")::

    RUN_DIR/
      recipe.yaml  metrics.json  trainer_state.json  README.md
      status.json  progress.jsonl (live: state, and one line per logged step)
      adapter_config.json + adapter_model.safetensors | config.json + model.safetensors
      checkpoints/checkpoint-N/   logs/   eval/report.json
      stages/NAME/                (progressive stages, each a run directory)
      NAME/ + router/             (task adapters, each a run directory, and their router)

Example:
    >>> run = RunDir("runs/medical-lora")
    >>> run.recipe_path.as_posix(), run.stage("warmup").path.as_posix()
    ('runs/medical-lora/recipe.yaml', 'runs/medical-lora/stages/warmup')
    >>> run.is_run()
    False
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import UserError
from ft_plugin.utils.io import write_text_atomic

if TYPE_CHECKING:
    from ft_plugin.config import LoadedRecipe

RECIPE = "recipe.yaml"
METRICS = "metrics.json"
TRAINER_STATE = "trainer_state.json"
CARD = "README.md"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
EVAL = "eval"
REPORT = "report.json"
PREDICTIONS = "predictions.jsonl"  # eval/: one line per evaluated row, the answers
STATUS = "status.json"  # state: running, done, stopped or failed (with the error line)
PROGRESS = "progress.jsonl"  # one line per trainer log event: step, loss, eval_loss, …
RUN_STATES = ("running", "done", "stopped", "failed")
STAGES = "stages"
ROUTER = "router"
FINAL_STAGING = ".final-staging"
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
)  # fmt: skip
# Recipe keys that name where a run goes, how it is evaluated or published, not what it trains.
IDENTITY_IGNORES = (
    "output_dir", "resume", "resume_from_checkpoint", "auto_resume_from_checkpoints",
    "hub_model_id", "hub", "eval",
)  # fmt: skip


def recipe_identity(yaml_text: str) -> dict[str, Any]:
    """What makes two resolved recipes the same run (where it is written does not).

    Example:
        >>> recipe_identity("seed: 1\\noutput_dir: a\\n") == recipe_identity("seed: 1\\noutput_dir: b\\n")
        True
    """
    import yaml

    data = yaml.safe_load(yaml_text) or {}
    return {k: v for k, v in data.items() if k not in IDENTITY_IGNORES}


class RunDir:
    """A run directory on disk: its paths, its files, and the checks before reuse."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @classmethod
    def for_recipe(cls, loaded: LoadedRecipe, output_dir: str | None = None) -> RunDir:
        """``output_dir`` (or the recipe's), with ``{recipe}`` replaced by the recipe's name."""
        template = output_dir or loaded.recipe.output_dir
        return cls(Path(template.replace("{recipe}", loaded.name)).expanduser())

    # ------------------------------------------------------------------ paths
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def recipe_path(self) -> Path:
        return self.path / RECIPE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def trainer_state_path(self) -> Path:
        return self.path / TRAINER_STATE

    @property
    def card_path(self) -> Path:
        return self.path / CARD

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    @property
    def router(self) -> Path:
        return self.path / ROUTER

    @property
    def final_staging(self) -> Path:
        return self.path / FINAL_STAGING

    def eval_dir(self) -> Path:
        return self.path / EVAL

    @property
    def report_path(self) -> Path:
        return self.path / EVAL / REPORT

    def stage(self, name: str) -> RunDir:
        return RunDir(self.path / STAGES / name)

    def task(self, name: str) -> RunDir:
        return RunDir(self.path / name)

    # ------------------------------------------------------------------ what it holds
    def is_run(self) -> bool:
        """Whether training wrote here (a ``recipe.yaml``)."""
        return self.recipe_path.is_file()

    def has_adapter(self) -> bool:
        return (self.path / ADAPTER_CONFIG).is_file()

    def is_finished(self) -> bool:
        """Whether training ran to its last step (a stopped run has metrics, but is not)."""
        return self.is_run() and self.metrics_path.is_file() and not self.is_stopped()

    def is_stopped(self) -> bool:
        """Whether training was stopped by a signal; its weights are those at the stop."""
        return self.metrics_path.is_file() and "stopped" in self.metrics()

    def task_names(self) -> list[str]:
        """Named task adapters: sub-folders that are adapter run directories."""
        return sorted(p.parent.name for p in self.path.glob(f"*/{ADAPTER_CONFIG}"))

    def weight_files(self, uses_peft: bool) -> list[str]:
        """The files of the trained weights, adapter or full model."""
        return [ADAPTER_CONFIG, ADAPTER_WEIGHTS] if uses_peft else [MODEL_CONFIG, MODEL_WEIGHTS]

    def tokenizer_files(self) -> list[str]:
        return [name for name in TOKENIZER_FILES if (self.path / name).is_file()]

    # ------------------------------------------------------------------ reading
    def recipe_text(self) -> str:
        return self.recipe_path.read_text(encoding="utf-8")

    def load_recipe(self, overrides: Mapping[str, Any] | None = None) -> LoadedRecipe:
        """The resolved recipe the run was trained with (with ``overrides``, dotted keys to
        values); a clear error when it is not a run.

        Example (usage, not run as a doctest: it needs a run directory)::

            RunDir("runs/medical").load_recipe({"max_steps": 10}).recipe.max_steps  # 10
        """
        from ft_plugin.config import load_recipe

        if not self.is_run():
            raise UserError(f"{self.path}: not a run directory (no {RECIPE})")
        return load_recipe(str(self.recipe_path), overrides)

    def metrics(self) -> dict[str, Any]:
        if not self.metrics_path.is_file():
            raise UserError(f"{self.path}: no {METRICS} (did training finish?)")
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    def trainer_state(self) -> dict[str, Any] | None:
        path = self.trainer_state_path
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def report(self) -> dict[str, Any] | None:
        path = self.report_path
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def latest_checkpoint(self) -> Path | None:
        numbered = [
            p for p in self.checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
        ]
        return max(numbered, key=lambda p: int(p.name.split("-")[-1]), default=None)

    def finished_metrics(self, loaded: LoadedRecipe) -> dict[str, Any] | None:
        """The metrics of a finished run of the same recipe here, else None (resume skips it)."""
        if not self.is_finished():
            return None
        if recipe_identity(self.recipe_text()) != recipe_identity(loaded.to_yaml()):
            return None
        return self.metrics()

    # ------------------------------------------------------------------ checks
    def check_reuse(self, resolved_yaml: str, resume: bool | str) -> Path | None:
        """Refuse a directory that holds a different run; return the checkpoint to resume from.

        ``resume``: False starts fresh, True requires a checkpoint, ``"auto"`` uses one if any.
        """
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--output-dir {self.path}: exists and is not a directory")
        if self.is_run():
            if recipe_identity(self.recipe_text()) != recipe_identity(resolved_yaml):
                raise UserError(
                    f"--output-dir {self.path}: holds a run of a different recipe "
                    f"({self.recipe_path}); choose another --output-dir or delete it"
                )
        elif self.path.is_dir() and any(self.path.iterdir()):
            raise UserError(
                f"--output-dir {self.path}: not empty and not an ft-plugin run directory"
            )
        checkpoint = self.latest_checkpoint()
        if resume is True and checkpoint is None:
            raise UserError(f"--resume: no checkpoint in {self.checkpoints} to resume from")
        return checkpoint if resume and checkpoint is not None else None

    def missing_for_publishing(self, uses_peft: bool) -> list[str]:
        """Files a push needs that are not here (checked before any network call)."""
        needed = [RECIPE, METRICS, *self.weight_files(uses_peft)]
        return [name for name in needed if not (self.path / name).is_file()]

    # ------------------------------------------------------------------ writing
    def write_recipe(self, loaded: LoadedRecipe) -> Path:
        return write_text_atomic(self.recipe_path, loaded.to_yaml())

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        return write_text_atomic(self.metrics_path, json.dumps(metrics, indent=2) + "\n")

    def clear_checkpoints(self) -> None:
        """A fresh start of the same recipe: no checkpoints, no progress of an earlier run."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        (self.path / PROGRESS).unlink(missing_ok=True)

    # ------------------------------------------------------------------ live state
    def status(self) -> dict[str, Any] | None:
        """``status.json``: ``state`` (running, done, stopped, failed), ``step``,
        ``max_steps``, ``pid``, ``updated`` and, when failed, ``error`` (one line)."""
        path = self.path / STATUS
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_status(self, state: str, **fields: Any) -> Path:
        """Replace ``status.json`` (atomically: a reader never sees half a file).

        Example:
            >>> import tempfile; run = RunDir(tempfile.mkdtemp())
            >>> _ = run.write_status("failed", error="CUDA out of memory")
            >>> run.status()["state"], run.status()["error"]
            ('failed', 'CUDA out of memory')
        """
        import time

        if state not in RUN_STATES:
            raise ValueError(f"state {state!r}: expected one of {RUN_STATES}")
        record = {"state": state, **fields, "updated": round(time.time(), 3)}
        return write_text_atomic(self.path / STATUS, json.dumps(record) + "\n")

    def progress(self) -> list[dict[str, Any]]:
        """The lines of ``progress.jsonl`` so far (a line being written is skipped)."""
        path = self.path / PROGRESS
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def append_progress(self, record: dict[str, Any]) -> None:
        with (self.path / PROGRESS).open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
