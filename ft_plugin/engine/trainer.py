"""The trainer one run uses: TRL's SFTTrainer, counted, measured, optionally penalised, with
Axolotl's packing keys and learning-rate curves TRL has no field for, a loss watchdog,
trackers, and where it resumes."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import UserError
from ft_plugin.rundir import TRAINER_STATE, RunDir

from .launch import is_main_process
from .preference import (
    STACKED_PAIRS,
    build_preference_config,
    match_trl_dropout,
    reference_model,
    reward_metrics,
    trainer_classes,
)
from .run_notes import run_notes
from .schedules import LambdaScheduleTrainerMixin, lambda_schedule
from .sft_config import build_sft_config, choose_gradient_checkpointing

if TYPE_CHECKING:
    from ft_plugin.config import Recipe


class PenaltyTrainerMixin:
    """Adds ``self.loss_penalty()`` to the training loss and logs its mean.

    The penalty (e.g. continual learning's EWC) is any callable returning a scalar tensor;
    its ``log_name`` attribute names it in the logs.
    """

    loss_penalty: Any = None

    def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:  # fmt: skip
        result = super().compute_loss(  # type: ignore[misc]
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        loss, outputs = result if return_outputs else (result, None)
        if model.training:
            penalty = self.loss_penalty()
            self._penalty_sum = getattr(self, "_penalty_sum", 0.0) + float(penalty.detach())
            self._penalty_count = getattr(self, "_penalty_count", 0) + 1
            loss = loss + penalty
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_penalty_count", 0) and "loss" in logs:
            name = getattr(self.loss_penalty, "log_name", "penalty")
            logs[name] = round(self._penalty_sum / self._penalty_count, 6)
            self._penalty_sum, self._penalty_count = 0.0, 0
        super().log(logs, *args, **kwargs)  # type: ignore[misc]


class PackingTrainerMixin:
    """Axolotl's `sample_packing_sequentially` and `eval_sample_packing: false` on TRL.

    ``pack_sequentially``: bins are filled in data order (a row that does not fit starts the
    next bin, as Axolotl's sequential packer does) instead of TRL's best-fit decreasing.
    ``eval_padded``: evaluation batches are padded rows (to ``eval_pad_to`` when set), not
    the padding-free concatenation the training batches use.
    """

    pack_sequentially: bool = False
    eval_padded: bool = False
    eval_pad_to: int | None = None

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, packing: bool,
                         formatting_func: Any, dataset_name: str) -> Any:  # fmt: skip
        prepare = super()._prepare_dataset  # type: ignore[misc]
        if not (packing and self.pack_sequentially):
            return prepare(dataset, processing_class, args, packing, formatting_func, dataset_name)
        rows = prepare(dataset, processing_class, args, False, formatting_func, dataset_name)
        return pack_in_order(rows, args.max_length)

    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        load = super().get_eval_dataloader  # type: ignore[misc]
        collator = self.data_collator  # type: ignore[attr-defined]
        if not self.eval_padded or not getattr(collator, "padding_free", False):
            return load(eval_dataset)
        self.data_collator = dataclasses.replace(
            collator, padding_free=False, pad_to_multiple_of=self.eval_pad_to
        )
        try:
            return load(eval_dataset)
        finally:
            self.data_collator = collator


def pack_in_order(dataset: Any, seq_length: int) -> Any:
    """Tokenized rows packed into bins of at most ``seq_length`` tokens in data order, with
    TRL's ``seq_lengths`` column so that each row still attends only to itself.

    Example:
        >>> from datasets import Dataset
        >>> rows = Dataset.from_dict({"input_ids": [[1, 2, 3], [4, 5], [6], [7, 8, 9]],
        ...                           "labels": [[1, 2, 3], [4, 5], [6], [7, 8, 9]]})
        >>> pack_in_order(rows, 4)[:]["seq_lengths"]  # in order; best-fit decreasing: [[3, 1], [3], [2]]
        [[3], [2, 1], [3]]
    """

    def pack(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "seq_lengths": []}
        for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
            ids, labels = ids[:seq_length], labels[:seq_length]
            if not out["seq_lengths"] or sum(out["seq_lengths"][-1]) + len(ids) > seq_length:
                out["input_ids"].append([])
                out["labels"].append([])
                out["seq_lengths"].append([])
            out["input_ids"][-1].extend(ids)
            out["labels"][-1].extend(labels)
            out["seq_lengths"][-1].append(len(ids))
        return out

    rows = dataset.select_columns(["input_ids", "labels"])
    return rows.map(pack, batched=True, remove_columns=["input_ids", "labels"])


class FullFinalSaveMixin:
    """Under FSDP the final save gathers whole weights (`fsdp_final_state_dict_type`:
    FULL_STATE_DICT), whatever ``state_dict_type`` the checkpoints use: the run directory
    holds loadable weights. Checkpoint saves (``_internal_call``) are left as configured."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if getattr(self, "is_fsdp_enabled", False) and not _internal_call:
            self.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")  # type: ignore[attr-defined]
        super().save_model(output_dir, _internal_call)  # type: ignore[misc]


def make_trainer(recipe, model, tokenizer, data, run_dir, precision, total, penalty=None):  # noqa: ANN001, ANN202
    """TRL's SFTTrainer with ft-plugin's counting and memory callbacks (and a loss penalty).

    Prints one line per key that does less here than it asks (``run_notes``), sets the
    run's tracker environment (``trainer.tracker_session``; ``engine.run`` closes it).
    """
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    from ft_plugin.callbacks import CountingTrainerMixin, LossWatchdog, PeakMemoryCallback
    from ft_plugin.callbacks.trackers import open_trackers
    from ft_plugin.speed.trl_lm_head import tune_fused_lm_head_for_cpu

    tune_fused_lm_head_for_cpu()

    has_eval = data.eval is not None
    build_config = build_preference_config if recipe.rl else build_sft_config
    args = build_config(
        recipe, run_dir, precision=precision,
        gradient_checkpointing=choose_gradient_checkpointing(recipe, total), has_eval=has_eval,
    )  # fmt: skip
    if is_main_process():
        for note in run_notes(recipe, has_eval):
            print(f"ft-plugin: {note}", file=sys.stderr)
    callbacks: list[Any] = [PeakMemoryCallback()]
    if recipe.early_stopping_patience:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience)
        )
    if recipe.loss_watchdog_threshold is not None:
        callbacks.append(
            LossWatchdog(recipe.loss_watchdog_threshold, recipe.loss_watchdog_patience)
        )
    packing = () if recipe.rl else (PackingTrainerMixin,)  # TRL's preference trainers pad
    mixins = (CountingTrainerMixin, *packing, FullFinalSaveMixin, LambdaScheduleTrainerMixin,
              *((PenaltyTrainerMixin,) if penalty is not None else ()))  # fmt: skip
    settings = {
        "lr_schedule": lambda_schedule(recipe),
        "pack_sequentially": bool(recipe.sample_packing_sequentially),
        "eval_padded": recipe.eval_sample_packing is False,
        "eval_pad_to": recipe.sequence_len if recipe.pad_to_sequence_len else None,
        "rows_per_example": 2 if recipe.rl in STACKED_PAIRS else 1,
    }
    base_trainer, extra = SFTTrainer, {}
    if recipe.rl:
        base_trainer = trainer_classes(recipe.rl)[0]
        if (reference := reference_model(recipe, model)) is not None:
            extra["ref_model"] = reference
    trainer_class = type("FtPluginTrainer", (*mixins, base_trainer), settings)
    session = open_trackers(recipe)  # before the trainer: its WandbCallback reads them
    try:
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=data.train,
            eval_dataset=data.eval,
            processing_class=tokenizer,
            callbacks=callbacks,
            **extra,
        )
    except BaseException:
        session.close()
        raise
    trainer.tracker_session = session
    if recipe.rl:
        match_trl_dropout(trainer.model, args)
    if penalty is not None:
        trainer.loss_penalty = penalty
    return trainer


def resume_point(
    recipe: Recipe, run: RunDir, resolved_yaml: str, resume: bool | str
) -> Path | None:
    """The checkpoint a run starts from: ``resume`` (``--resume``; or the recipe's `resume:`,
    `auto_resume_from_checkpoints`) picks the run directory's latest,
    `resume_from_checkpoint` names one. With both,
    this run's own latest checkpoint wins when there is one (it went on past the named
    one), else the named one. ``run.check_reuse`` refuses a directory of another run."""
    named = recipe.resume_from_checkpoint
    wanted = resume or recipe.resume
    if named is None:
        auto = "auto" if recipe.auto_resume_from_checkpoints else False
        return run.check_reuse(resolved_yaml, wanted or auto)
    latest = run.check_reuse(resolved_yaml, "auto" if wanted else False)
    return latest if latest is not None else named_checkpoint(named)


def named_checkpoint(path: str) -> Path:
    """A `resume_from_checkpoint` folder, checked: transformers resumes from its state file."""
    folder = Path(path).expanduser()
    if not (folder / TRAINER_STATE).is_file():
        raise UserError(
            f"resume_from_checkpoint: {path}: not a checkpoint folder (no {TRAINER_STATE}); "
            "give a checkpoint-N folder of an earlier run, e.g. runs/NAME/checkpoints/checkpoint-20"
        )
    return folder


def checkpoint_step(checkpoint: Path | str | None) -> int:
    """The optimizer step a checkpoint was saved at (0 for a fresh start)."""
    if checkpoint is None:
        return 0
    state = json.loads((Path(checkpoint) / TRAINER_STATE).read_text(encoding="utf-8"))
    return int(state.get("global_step", 0))


def collect_metrics(trainer, output, data, wall, trainable, total, start_step) -> dict[str, Any]:  # noqa: ANN001
    """metrics.json of a finished run (DESIGN.md lists the keys)."""
    from ft_plugin.utils.memory import peak_memory_mb

    history = trainer.state.log_history
    rows_seen, train_tokens = trainer.counts_across_processes()
    train_runtime = output.metrics.get("train_runtime", wall)
    steps_run = max(1, trainer.state.global_step - start_step)  # this session's steps
    metrics: dict[str, Any] = {
        "train_loss": round(float(output.training_loss), 6),
        "eval_loss": None,
        "eval_perplexity": None,
        "train_tokens": train_tokens,
        "tokens_per_second": round(train_tokens / train_runtime, 2) if train_runtime else None,
        "rows_per_step": round(rows_seen / steps_run, 2),
        "tokens_per_step": round(train_tokens / steps_run, 1),
        "packing": _packing_label(trainer.args),
        "world_size": trainer.accelerator.num_processes,
        "distributed": str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1].lower(),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "wall_seconds": round(wall, 2),
        "trainable_params": trainable,
        "total_params": total,
        "steps": trainer.state.global_step,
        "train_rows": None if data.streamed else len(data.train),  # streamed: unknown
        "eval_rows": len(data.eval) if data.eval is not None else 0,
    }
    if data.eval is not None:
        eval_loss = _final_eval_loss(trainer, history)
        metrics["eval_loss"] = round(float(eval_loss), 6)
        if getattr(trainer.args, "loss_type", None) == "nll":  # a cross-entropy (not DFT, DPO)
            metrics["eval_perplexity"] = round(math.exp(min(eval_loss, 50.0)), 4)
    last_logged = [h for h in history if "loss" in h]
    if last_logged:
        metrics["final_logged_loss"] = last_logged[-1]["loss"]
    if rewards := reward_metrics(history):  # preference runs (rl:)
        metrics["rewards"] = rewards
    return metrics


def _final_eval_loss(trainer: Any, history: list[dict[str, Any]]) -> float:
    """The final weights' eval loss: logged at the last step already (no second pass over
    the held-out rows), else evaluated now; with early stopping the best weights are back."""
    if not trainer.args.load_best_model_at_end:
        step = trainer.state.global_step
        at_end = [h["eval_loss"] for h in history if "eval_loss" in h and h.get("step") == step]
        if at_end:
            return at_end[-1]
    return trainer.evaluate()["eval_loss"]


def _packing_label(args: Any) -> str:
    if getattr(args, "packing", False):
        return f"bins of {args.max_length} tokens"
    return "rows, padding-free" if getattr(args, "padding_free", False) else "none (padded batches)"
