"""One line per recipe key that does less on this machine than it asks (``run_notes``):
a key with no effect here is never silent (the trainer prints these before training)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ft_plugin.config.schema.training import LOW_RANK_OPTIMIZERS

from .launch import distributed_notes
from .schedules import schedule_notes
from .sft_config import resolve_optimizer

if TYPE_CHECKING:
    from ft_plugin.config import Recipe


def run_notes(recipe: Recipe, has_eval: bool) -> list[str]:
    """One line for each key that does less here than it asks (the run prints them)."""
    import torch
    from transformers.utils import is_torch_tf32_available

    from ft_plugin.callbacks.trackers import report_targets, wandb_line

    cuda = torch.cuda.is_available()
    notes = [note for note in (resolve_optimizer(recipe.optimizer, cuda)[1],) if note]
    if recipe.tf32 is True and not is_torch_tf32_available():
        notes.append("tf32: no effect here: TF32 is a matmul mode of NVIDIA Ampere or newer GPUs; "
                     "matmuls run in full fp32")  # fmt: skip
    notes += _checkpointing_notes(recipe, torch.accelerator.is_available())
    notes += _schedule_notes(recipe, has_eval)
    notes += _packing_notes(recipe)
    notes += schedule_notes(recipe)
    notes += _sampling_notes(recipe)
    notes += _optimizer_argument_notes(recipe, resolve_optimizer(recipe.optimizer, cuda)[0])
    if recipe.use_dft and has_eval:
        notes.append("use_dft: eval_loss is the DFT loss (probability-weighted), not a "
                     "cross-entropy: no eval_perplexity is reported")  # fmt: skip
    if any(getattr(recipe, k) is not None for k in ("adam_beta1", "adam_beta2", "adam_epsilon")) \
            and "adam" not in resolve_optimizer(recipe.optimizer, cuda)[0]:  # fmt: skip
        notes.append(f"adam_beta1 / adam_beta2 / adam_epsilon: the optimizer "
                     f"{recipe.optimizer} is not Adam: they may not apply")  # fmt: skip
    if "wandb" in report_targets(recipe):
        notes.append(wandb_line(recipe))
    elif recipe.wandb_enabled():
        notes.append("wandb_project / use_wandb: no effect here: report_to: none turns every "
                     "tracker off")  # fmt: skip
    elif any(getattr(recipe, k) for k in ("wandb_entity", "wandb_name", "wandb_run_id")):
        notes.append("wandb_*: no effect here: W&B reporting is off (name wandb_project, or "
                     "use_wandb: true)")  # fmt: skip
    return notes + distributed_notes(recipe)


def _checkpointing_notes(recipe: Recipe, accelerator: bool) -> list[str]:
    notes = []
    if recipe.gradient_checkpointing == "offload_disk":
        notes.append("gradient_checkpointing: offload_disk: transformers offloads the saved "
                     "activations to host memory, not to disk: it runs as offload")  # fmt: skip
    if recipe.gradient_checkpointing in ("offload", "offload_disk") and not accelerator:
        notes.append("gradient_checkpointing: offload: on a CPU the activations are in host "
                     "memory already: gradient checkpointing runs, with nothing to offload")  # fmt: skip
    if recipe.gradient_checkpointing_kwargs and recipe.gradient_checkpointing is False:
        notes.append("gradient_checkpointing_kwargs: no effect: gradient_checkpointing is off")
    return notes


def _schedule_notes(recipe: Recipe, has_eval: bool) -> list[str]:
    notes = []
    if recipe.evals_per_epoch and not has_eval:
        notes.append("evals_per_epoch: no effect here: no eval set (set val_set_size or "
                     "test_datasets)")  # fmt: skip
    if recipe.loss_watchdog_patience and recipe.loss_watchdog_threshold is None:
        notes.append("loss_watchdog_patience: no effect without loss_watchdog_threshold")
    return notes


def _sampling_notes(recipe: Recipe) -> list[str]:
    from ft_plugin.data.build import is_streaming

    notes = []
    if recipe.group_by_length and recipe.curriculum_sampling:
        notes.append("group_by_length: no effect with curriculum_sampling: rows are drawn in "
                     "order (Axolotl's precedence)")  # fmt: skip
    elif recipe.group_by_length and recipe.sample_packing:
        notes.append("group_by_length: no effect here: packed batches carry no padding")
    elif recipe.group_by_length and is_streaming(recipe):
        notes.append("group_by_length: no effect here: streamed rows are trained in the order "
                     "they arrive")  # fmt: skip
    datasets = len(recipe.datasets or [])
    if recipe.curriculum_sampling and datasets > 1 and recipe.shuffle_merged_datasets:
        notes.append(f"curriculum_sampling: the {datasets} datasets are shuffled together "
                     "(shuffle_merged_datasets: true), so rows are in that shuffled order; write "
                     "shuffle_merged_datasets: false for file order")  # fmt: skip
    return notes


# transformers' optimizers that read `optim_args` (trainer_optimizer.py), by name prefix.
OPTIM_ARGS_READERS = (
    "sgd", "adagrad", "rmsprop", "galore_", "apollo_", "grokadamw", "adamw_torch_4bit",
    "adamw_torch_8bit", "schedule_free_", "stable_adamw", "adamw_anyprecision", "ademamix",
    "paged_ademamix",
)  # fmt: skip


def _optimizer_argument_notes(recipe: Recipe, optim: str) -> list[str]:
    notes = []
    if recipe.optim_args and not optim.startswith(OPTIM_ARGS_READERS):
        notes.append(f"optim_args: no effect here: {optim} takes no optim_args (transformers "
                     f"reads them for {', '.join(OPTIM_ARGS_READERS)})")  # fmt: skip
    if recipe.optim_target_modules and not optim.startswith(LOW_RANK_OPTIMIZERS):
        notes.append(f"optim_target_modules: no effect here: only GaLore / APOLLO optimizers "
                     f"(galore_*, apollo_*) read it; this run: {optim}")  # fmt: skip
    return notes


def _packing_notes(recipe: Recipe) -> list[str]:
    notes = []
    if recipe.sample_packing is True:  # Axolotl users read `true` as bins: say which it is
        rows, length = recipe.micro_batch_size, recipe.sequence_len
        notes.append(f"sample_packing: true packs the {rows} rows of each micro-batch without "
                     f"padding (a step sees the rows it would unpacked); for Axolotl's meaning, "
                     f"{rows} bins of up to {length} tokens each (fewer, larger steps), write "
                     "sample_packing: bins (sample_packing: rows keeps this and says nothing)")  # fmt: skip
    if recipe.sample_packing_sequentially and recipe.sample_packing != "bins":
        why = ("rows packing concatenates each micro-batch's rows in data order already"
               if recipe.sample_packing else "sample_packing is off")  # fmt: skip
        notes.append(f"sample_packing_sequentially: no effect here: {why}")
    if recipe.eval_sample_packing and not recipe.sample_packing:
        notes.append("eval_sample_packing: no effect here: sample_packing is off")
    if recipe.pad_to_sequence_len and recipe.sample_packing:
        notes.append("pad_to_sequence_len: packed batches stay padding-free; unpacked ones "
                     "(eval with eval_sample_packing: false) are padded to sequence_len")  # fmt: skip
    return notes
