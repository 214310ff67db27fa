"""One training run: a recipe in, a run directory out (DESIGN.md, "Run directory").

The engine knows a single run only: progressive stages, task adapters and the command
line are built on ``prepare_run`` / ``run`` by the layers above it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin import registry
from ft_plugin.methods.base import count_parameters
from ft_plugin.rundir import RunDir

from .launch import is_main_process, launch_notes, quiet
from .preference import drop_reference_adapter
from .sft_config import choose_precision, compute_dtype
from .trainer import checkpoint_step, collect_metrics, make_trainer, resume_point

if TYPE_CHECKING:
    from ft_plugin.config import LoadedRecipe, Recipe


@dataclass
class RunResult:
    """What a finished training run produced."""

    run_dir: Path
    metrics: dict[str, Any]


@dataclass
class PreparedRun:
    """Everything checked and loaded, nothing written yet: the trainer ready to start."""

    loaded: LoadedRecipe
    run_dir: Path
    checkpoint: Path | None
    trainer: Any
    data: Any
    trainable_params: int
    total_params: int


def save_final(trainer: Any, run_dir: Path) -> None:
    """Save the trained weights and tokenizer next to recipe.yaml, via a staging folder.

    Every process calls it (FSDP gathers the weights collectively); the main one writes.
    """
    main = trainer.is_world_process_zero()
    staging = RunDir(run_dir).final_staging
    if main:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    try:
        trainer.save_model(str(staging))
        if main:
            # A pickle of the arguments; recipe.yaml already says everything, and we ship no pickles.
            (staging / "training_args.bin").unlink(missing_ok=True)
            for item in staging.iterdir():
                target = run_dir / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(item, target)
    finally:
        trainer.accelerator.wait_for_everyone()
        if main:
            shutil.rmtree(staging, ignore_errors=True)


def in_curriculum_order(recipe: Recipe) -> Recipe:
    """The recipe the data stage reads: with `curriculum_sampling` one dataset keeps its
    file order (Axolotl's merge_datasets does not shuffle it; several are shuffled together
    unless shuffle_merged_datasets: false, and a stream keeps its buffer shuffle)."""
    from ft_plugin.data.build import is_streaming

    if (recipe.curriculum_sampling and recipe.shuffle_merged_datasets
            and len(recipe.datasets or []) == 1 and not is_streaming(recipe)):  # fmt: skip
        return recipe.model_copy(update={"shuffle_merged_datasets": False})
    return recipe


def _announce(recipe: Any, data: Any, counts: tuple[int, int], precision: str, say: Any) -> None:
    """What the run trains, on how many rows, and the rows it dropped for their length."""
    from ft_plugin.data.build import OVERLONG
    from ft_plugin.data.lengths import length_advice

    trainable, total = counts
    train_rows = "streamed" if data.streamed else f"{len(data.train)}"
    say(
        f"ft-plugin: {recipe.adapter} on {recipe.base_model}: {trainable:,} trainable of {total:,} "
        f"parameters ({100 * trainable / total:.3f}%), {precision}, "
        f"{train_rows} train / {len(data.eval) if data.eval is not None else 0} eval rows",
        file=sys.stderr,
    )
    if (overlong := data.dropped.get(OVERLONG)) and data.lengths:
        say(f"ft-plugin: {length_advice(data.lengths, 'sequence_len:')}", file=sys.stderr)
    elif overlong:
        say(f"ft-plugin: dropped {overlong} row{'s' * (overlong != 1)} longer than "
            f"sequence_len={recipe.sequence_len}", file=sys.stderr)  # fmt: skip


def prepare_run(
    loaded: LoadedRecipe,
    output_dir: str | None = None,
    resume: bool | str = False,
    callbacks: list[Any] | None = None,
    penalty_for: Callable[[Any], Any] | None = None,
) -> PreparedRun:
    """Check the run directory, build data, load model and method, make the trainer.

    Everything that can fail on bad input happens here, before anything is written.
    ``penalty_for(model)`` returns a loss penalty to add (continual learning's EWC).
    """
    from ft_plugin import models
    from ft_plugin.data import build_training_data
    from ft_plugin.speed.lora_layers import speed_up_lora_layers
    from ft_plugin.utils.memory import reset_peak

    reset_peak()  # this run's peak memory, not an earlier run's in the same process
    recipe = loaded.recipe
    run = RunDir.for_recipe(loaded, output_dir)
    run_dir = run.path
    checkpoint = resume_point(recipe, run, loaded.to_yaml(), resume)
    if recipe.torch_threads:
        import torch

        torch.set_num_threads(recipe.torch_threads)
    say = print if is_main_process() else quiet
    method = registry.load_method(recipe.adapter)
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    if fallback := models.packing_fallback(recipe, base):  # the model cannot keep rows apart
        say(f"ft-plugin: {fallback}", file=sys.stderr)
        recipe = recipe.model_copy(update={"sample_packing": False, "eval_sample_packing": False})
    tokenizer = models.load_tokenizer(recipe, base)
    data = build_training_data(in_curriculum_order(recipe), tokenizer)
    for note in data.notes:  # dedup counts, prepared data reused, streaming
        say(f"ft-plugin: {note}", file=sys.stderr)
    from transformers import set_seed

    set_seed(recipe.seed)  # adapter initialisation is random: seed it, not only the Trainer
    precision = choose_precision(recipe, method.uses_peft)
    model = models.load_model(
        recipe, base, dtype=precision.load_dtype,
        quantization_config=method.quantization_config(recipe, compute_dtype(precision)),
    )  # fmt: skip
    if recipe.lora_model_dir:
        from ft_plugin.hub.refs import resolve_folder

        model = method.start_from(model, recipe, resolve_folder(recipe.lora_model_dir))
    else:
        model = method.prepare(model, recipe)
    speed_up_lora_layers(model, autocast_half=precision.bf16 or precision.fp16)
    penalty = penalty_for(model) if penalty_for is not None else None
    trainable, total = count_parameters(model)
    _announce(recipe, data, (trainable, total), precision.label, say)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.logs)
    existed = run_dir.exists()
    try:
        trainer = make_trainer(recipe, model, tokenizer, data, run_dir, precision, total, penalty)
        trainer.accelerator.wait_for_everyone()  # every rank has made its trainer
    finally:
        if not existed and is_main_process():  # Trainer makes its output folder eagerly
            shutil.rmtree(run_dir, ignore_errors=True)
    for note in launch_notes(trainer.is_fsdp_enabled, trainer.accelerator.distributed_type):
        say(f"ft-plugin: {note}", file=sys.stderr)
    for callback in callbacks or []:
        trainer.add_callback(callback)
    return PreparedRun(loaded, run_dir, checkpoint, trainer, data, trainable, total)


def run(prepared: PreparedRun) -> RunResult:
    """Train a prepared run and write the run directory's contract files (main process only)."""
    run_dir, trainer = prepared.run_dir, prepared.trainer
    folder = RunDir(run_dir)
    main = trainer.is_world_process_zero()
    if main:
        if prepared.checkpoint is None:
            folder.clear_checkpoints()  # a fresh start of the same recipe
        run_dir.mkdir(parents=True, exist_ok=True)
        folder.write_recipe(prepared.loaded)
    trainer.accelerator.wait_for_everyone()
    from ft_plugin.callbacks import ProgressLog, StopOnSignal, close_trackers, watchdog_stop

    stop = StopOnSignal()
    trainer.add_callback(stop)
    trainer.add_callback(ProgressLog(run_dir, trainer))
    started = time.perf_counter()
    checkpoint = str(prepared.checkpoint) if prepared.checkpoint else None
    start_step = checkpoint_step(checkpoint)  # read now: the rotation may delete it while training
    with _failure_recorded(folder, main):
        output = trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.perf_counter() - started
    metrics = collect_metrics(
        trainer, output, prepared.data, wall, prepared.trainable_params, prepared.total_params,
        start_step,
    )  # fmt: skip
    stopped = (
        {"signal": stop.requested, "step": stop.stopped_at}
        if stop.requested
        else watchdog_stop(trainer)
    )  # a signal, or the loss watchdog (with its reason)
    if stopped:
        metrics["stopped"] = stopped
    drop_reference_adapter(trainer.model)  # a preference run's frozen reference (rl:)
    save_final(trainer, run_dir)
    if main:
        trainer.processing_class.save_pretrained(str(run_dir))
        trainer.state.save_to_json(str(folder.trainer_state_path))
        folder.write_metrics(metrics)
        state = trainer.state
        reason = {"reason": stopped["reason"]} if stopped and "reason" in stopped else {}
        folder.write_status("stopped" if stopped else "done", step=state.global_step,
                            max_steps=state.max_steps, pid=os.getpid(), **reason)  # fmt: skip
    trainer.accelerator.wait_for_everyone()
    close_trackers(trainer)  # the W&B run ends with this run
    return RunResult(run_dir, metrics)


@contextlib.contextmanager
def _failure_recorded(folder: RunDir, main: bool) -> Iterator[None]:
    """A training that raises leaves ``status.json`` saying failed, with the error line."""
    try:
        yield
    except BaseException as exc:
        if main:
            line = (
                "interrupted"
                if isinstance(exc, KeyboardInterrupt)
                else f"{type(exc).__name__}: {exc}"
            )
            folder.write_status("failed", error=line.strip().splitlines()[-1] if line.strip() else line,
                                pid=os.getpid())  # fmt: skip
        raise
