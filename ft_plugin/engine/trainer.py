"""The trainer one run uses: TRL's SFTTrainer, counted, measured, optionally penalised."""

from __future__ import annotations

import math
from typing import Any

from .sft_config import build_sft_config, choose_gradient_checkpointing


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


def make_trainer(recipe, model, tokenizer, data, run_dir, precision, total, penalty=None):  # noqa: ANN001, ANN202
    """TRL's SFTTrainer with ft-plugin's counting and memory callbacks (and a loss penalty)."""
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    from ft_plugin.callbacks import CountingTrainerMixin, PeakMemoryCallback
    from ft_plugin.trl_compat import tune_fused_lm_head_for_cpu

    tune_fused_lm_head_for_cpu()

    args = build_sft_config(
        recipe, run_dir, precision=precision,
        gradient_checkpointing=choose_gradient_checkpointing(recipe, total),
        has_eval=data.eval is not None,
    )  # fmt: skip
    callbacks: list[Any] = [PeakMemoryCallback()]
    if recipe.early_stopping_patience:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience)
        )
    mixins = (CountingTrainerMixin, *((PenaltyTrainerMixin,) if penalty is not None else ()))
    trainer_class = type("FtPluginTrainer", (*mixins, SFTTrainer), {})
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if penalty is not None:
        trainer.loss_penalty = penalty
    return trainer


def collect_metrics(trainer, output, data, wall, trainable, total, start_step) -> dict[str, Any]:  # noqa: ANN001
    """metrics.json of a finished run (DESIGN.md lists the keys)."""
    from ft_plugin.memory import peak_memory_mb

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
        "train_rows": len(data.train),
        "eval_rows": len(data.eval) if data.eval is not None else 0,
    }
    if data.eval is not None:
        eval_loss = _final_eval_loss(trainer, history)
        metrics["eval_loss"] = round(float(eval_loss), 6)
        metrics["eval_perplexity"] = round(math.exp(min(eval_loss, 50.0)), 4)
    last_logged = [h for h in history if "loss" in h]
    if last_logged:
        metrics["final_logged_loss"] = last_logged[-1]["loss"]
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
    if args.packing:
        return f"bins of {args.max_length} tokens"
    return "rows, padding-free" if args.padding_free else "none (padded batches)"
