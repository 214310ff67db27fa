"""Train stage: a recipe in, a run directory out (see DESIGN.md for its layout).

``ft-plugin train RECIPE`` and ``accelerate launch -m ft_plugin.train RECIPE`` both end
here. The trainer is TRL's ``SFTTrainer``; this module maps the recipe onto an
``SFTConfig`` (one visible table), loads the base model through the recipe's method,
and writes the run directory's contract files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin import registry
from ft_plugin.config import LoadedRecipe
from ft_plugin.errors import UserError
from ft_plugin.io import write_text_atomic

if TYPE_CHECKING:
    import torch
    from trl import SFTConfig

    from ft_plugin.config import Recipe

# Axolotl recipe key -> SFTConfig / TrainingArguments field. Everything else is derived
# in build_sft_config (precision, evaluation and save strategy, loss masking).
AXOLOTL_TO_SFT: dict[str, str] = {
    "micro_batch_size": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "num_epochs": "num_train_epochs",
    "learning_rate": "learning_rate",
    "lr_scheduler": "lr_scheduler_type",
    "optimizer": "optim",
    "warmup_steps": "warmup_steps",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "logging_steps": "logging_steps",
    "save_total_limit": "save_total_limit",
    "seed": "seed",
    "dataloader_num_workers": "dataloader_num_workers",
}

# Gradient checkpointing recomputes activations (~20-30% slower). TRL turns it on by
# default; we turn it on only where memory needs it: models of this size and up.
GRADIENT_CHECKPOINTING_MIN_PARAMS = 1_000_000_000

# Keys that may differ between a run directory's recipe and a resumed/re-run recipe.
_RUN_IDENTITY_IGNORES = ("output_dir", "resume", "hub_model_id", "hub")


@dataclass(frozen=True)
class Precision:
    """Mixed-precision choice: autocast flags and the dtype to load base weights in."""

    bf16: bool
    fp16: bool
    load_dtype: torch.dtype

    @property
    def label(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"


@dataclass
class RunResult:
    """What a finished training run produced."""

    run_dir: Path
    metrics: dict[str, Any]


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix units (AMX or AVX512-BF16).

    Training measured faster in bf16 than fp32 on both (Intel AMX, AMD AVX512-BF16). Without
    these units bf16 is emulated and slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(recipe: Recipe, uses_peft: bool) -> Precision:
    """Resolve `bf16: auto` / `fp16` for this machine and the dtype of the frozen base."""
    import torch

    cuda = torch.cuda.is_available()
    if recipe.fp16:
        bf16, fp16 = False, True
    elif recipe.bf16 == "auto":
        bf16, fp16 = (torch.cuda.is_bf16_supported() if cuda else cpu_has_fast_bf16()), False
    else:
        bf16, fp16 = bool(recipe.bf16), False
    # Adapters over a frozen base: keep the base in the half dtype (half the memory, and
    # on the CPU no per-step cast of every frozen weight by autocast: measured in
    # BENCHMARKS.md); adapters and trainable full weights stay fp32 under autocast.
    load = torch.float32
    if uses_peft and (cuda or bf16):
        load = torch.bfloat16 if bf16 else torch.float16 if fp16 else torch.float32
    return Precision(bf16, fp16, load)


def choose_gradient_checkpointing(recipe: Recipe, total_params: int) -> bool:
    if recipe.gradient_checkpointing == "auto":
        return total_params >= GRADIENT_CHECKPOINTING_MIN_PARAMS
    return bool(recipe.gradient_checkpointing)


def build_sft_config(
    recipe: Recipe,
    run_dir: Path,
    *,
    precision: Precision,
    gradient_checkpointing: bool,
    has_eval: bool,
) -> SFTConfig:
    """The `SFTConfig` for a recipe: the table above plus derived settings."""
    import torch
    from trl import SFTConfig

    kwargs: dict[str, Any] = {sft: getattr(recipe, key) for key, sft in AXOLOTL_TO_SFT.items()}
    kwargs.update(
        output_dir=str(run_dir / "checkpoints"),
        per_device_eval_batch_size=recipe.micro_batch_size,
        max_steps=recipe.max_steps or -1,
        bf16=precision.bf16,
        fp16=precision.fp16,
        use_cpu=not torch.cuda.is_available(),  # transformers refuses CPU bf16 without it
        activation_checkpointing=gradient_checkpointing,
        completion_only_loss=not recipe.train_on_inputs,
        report_to=[] if recipe.report_to == ["none"] else list(recipe.report_to),
        **packing_arguments(recipe),
        save_strategy="steps",
        save_steps=recipe.save_steps or recipe.eval_steps or 100,
        eval_strategy="steps" if has_eval and recipe.eval_steps else "no",
        eval_steps=recipe.eval_steps,
        # Early stopping keeps the best checkpoint, which needs aligned evaluation and saves.
        load_best_model_at_end=bool(recipe.early_stopping_patience),
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        dataset_num_proc=None,
        disable_tqdm=False,
        save_only_model=False,
        logging_first_step=True,
    )
    if recipe.early_stopping_patience and not recipe.eval_steps:
        kwargs.update(eval_strategy="epoch", save_strategy="epoch")
    return SFTConfig(**kwargs)


def packing_arguments(recipe: Recipe) -> dict[str, Any]:
    """SFTConfig's packing fields for `sample_packing` (see the schema's description).

    `true`/`rows` is TRL's padding-free collation of each micro-batch: the rows a step
    sees are those it would see unpacked. The data stage has already dropped rows longer
    than `sequence_len` and cut raw text into windows, so no truncation is asked of TRL
    (it refuses ``max_length`` with padding-free batches that are not bin-packed).
    """
    mode = recipe.sample_packing
    if mode == "bins":
        return {"packing": True, "packing_strategy": "bfd", "padding_free": True,
                "max_length": recipe.sequence_len}  # fmt: skip
    if mode:
        return {"packing": False, "padding_free": True, "max_length": None}
    return {"packing": False, "padding_free": False, "max_length": recipe.sequence_len}


def resolve_run_dir(loaded: LoadedRecipe, output_dir: str | None) -> Path:
    template = output_dir or loaded.recipe.output_dir
    return Path(template.replace("{recipe}", loaded.name)).expanduser()


def _identity(yaml_text: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(yaml_text) or {}
    return {k: v for k, v in data.items() if k not in _RUN_IDENTITY_IGNORES}


def latest_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = sorted(
        (
            p
            for p in (run_dir / "checkpoints").glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit()
        ),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return checkpoints[-1] if checkpoints else None


def check_run_dir(run_dir: Path, resolved_yaml: str, resume: bool | str) -> Path | None:
    """Refuse a directory that holds a different run; return the checkpoint to resume from."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--output-dir {run_dir}: exists and is not a directory")
    previous = run_dir / "recipe.yaml"
    if previous.is_file():
        if _identity(previous.read_text(encoding="utf-8")) != _identity(resolved_yaml):
            raise UserError(
                f"--output-dir {run_dir}: holds a run of a different recipe ({previous}); "
                "choose another --output-dir or delete it"
            )
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise UserError(f"--output-dir {run_dir}: not empty and not an ft-plugin run directory")
    checkpoint = latest_checkpoint(run_dir)
    if resume is True and checkpoint is None:
        raise UserError(f"--resume: no checkpoint in {run_dir / 'checkpoints'} to resume from")
    if resume and checkpoint is not None:
        return checkpoint
    return None


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed launch (torchrun, accelerate, MPI)."""
    for variable in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if variable in os.environ:
            return os.environ[variable] == "0"
    return True


def _quiet(*args: Any, **kwargs: Any) -> None:
    """print() for processes other than the main one: their lines would repeat its own."""


def check_launch() -> None:
    """Refuse `accelerate launch --cpu --num_processes N` where accelerate starts one process.

    Without mpirun, accelerate's CPU launcher runs a single process (it sets
    ``MASTER_ADDR`` for the N it was asked for, but no rank or world size); training
    would silently run on one process.
    """
    distributed = (
        "WORLD_SIZE",
        "LOCAL_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "MV2_COMM_WORLD_SIZE",
    )
    if (
        os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
        and "MASTER_ADDR" in os.environ
        and not any(variable in os.environ for variable in distributed)
    ):
        raise UserError(
            "accelerate launch --cpu starts one process unless mpirun is set up (--mpirun_hostfile); "
            "for N processes on this machine's CPUs run: accelerate launch --config_file "
            "recipes/accelerate/ddp.yaml --num_processes N -m ft_plugin.train RECIPE (torchrun, gloo)"
        )


def launch_notes(fsdp_enabled: bool, distributed_type: Any) -> list[str]:
    """What the launcher was asked for and accelerate does not do here (said, not hidden)."""
    notes = []
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not fsdp_enabled:
        kind = str(distributed_type).rsplit(".", 1)[-1].lower()
        notes.append(
            f"FSDP was asked for but accelerate enables it on GPUs only; this run is {kind} "
            "(every process holds the whole model)"
        )
    return notes


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights count as their true size."""
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        if hasattr(parameter, "quant_state"):  # bitsandbytes Params4bit packs two values per byte
            count = math.prod(parameter.quant_state.shape)
        total += count
        trainable += count if parameter.requires_grad else 0
    return trainable, total


def _save_final(trainer: Any, run_dir: Path) -> None:
    """Save the trained weights and tokenizer next to recipe.yaml, via a staging folder.

    Every process calls it (FSDP gathers the weights collectively); the main one writes.
    """
    main = trainer.is_world_process_zero()
    staging = run_dir / ".final-staging"
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


def prepare_run(
    loaded: LoadedRecipe,
    output_dir: str | None = None,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> PreparedRun:
    """Check the run directory, build data, load model and method, make the trainer.

    Everything that can fail on bad input happens here, before anything is written.
    """
    from ft_plugin import models
    from ft_plugin.data import build_training_data
    from ft_plugin.data.build import OVERLONG
    from ft_plugin.data.lengths import length_advice
    from ft_plugin.methods.lora_training import speed_up_lora_layers

    recipe = loaded.recipe
    run_dir = resolve_run_dir(loaded, output_dir)
    checkpoint = check_run_dir(run_dir, loaded.to_yaml(), resume or recipe.resume)
    if recipe.torch_threads:
        import torch

        torch.set_num_threads(recipe.torch_threads)
    method = registry.load_method(recipe.adapter)
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    tokenizer = models.load_tokenizer(recipe, base)
    data = build_training_data(recipe, tokenizer)
    from transformers import set_seed

    set_seed(recipe.seed)  # adapter initialisation is random: seed it, not only the Trainer
    precision = choose_precision(recipe, method.uses_peft)
    model = models.load_model(
        recipe, base, dtype=precision.load_dtype,
        quantization_config=method.quantization_config(recipe, _compute_dtype(precision)),
    )  # fmt: skip
    if recipe.lora_model_dir:
        from ft_plugin.hub.refs import resolve_folder

        model = method.start_from(model, recipe, resolve_folder(recipe.lora_model_dir))
    else:
        model = method.prepare(model, recipe)
    speed_up_lora_layers(model, autocast_half=precision.bf16 or precision.fp16)
    ewc = _ewc_penalty(recipe, model) if recipe.ewc else None
    trainable, total = count_parameters(model)
    say = print if is_main_process() else _quiet
    say(
        f"ft-plugin: {recipe.adapter} on {recipe.base_model}: {trainable:,} trainable of {total:,} "
        f"parameters ({100 * trainable / total:.3f}%), {precision.label}, "
        f"{len(data.train)} train / {len(data.eval) if data.eval is not None else 0} eval rows",
        file=sys.stderr,
    )
    if (overlong := data.dropped.get(OVERLONG)) and data.lengths:
        say(f"ft-plugin: {length_advice(data.lengths, 'sequence_len:')}", file=sys.stderr)
    elif overlong:
        say(f"ft-plugin: dropped {overlong} row{'s' * (overlong != 1)} longer than "
            f"sequence_len={recipe.sequence_len}", file=sys.stderr)  # fmt: skip
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "logs")
    existed = run_dir.exists()
    try:
        trainer = _make_trainer(recipe, model, tokenizer, data, run_dir, precision, total, ewc)
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
    main = trainer.is_world_process_zero()
    if main:
        if prepared.checkpoint is None and (run_dir / "checkpoints").exists():
            shutil.rmtree(run_dir / "checkpoints")  # a fresh start of the same recipe
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "recipe.yaml", prepared.loaded.to_yaml())
    trainer.accelerator.wait_for_everyone()
    from ft_plugin.callbacks import StopOnSignal

    stop = StopOnSignal()
    trainer.add_callback(stop)
    started = time.perf_counter()
    checkpoint = str(prepared.checkpoint) if prepared.checkpoint else None
    output = trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.perf_counter() - started
    start_step = int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else 0
    metrics = _collect_metrics(
        trainer, output, prepared.data, wall, prepared.trainable_params, prepared.total_params,
        start_step,
    )  # fmt: skip
    if stop.requested:
        metrics["stopped"] = {"signal": stop.requested, "step": stop.stopped_at}
    _save_final(trainer, run_dir)
    if main:
        trainer.processing_class.save_pretrained(str(run_dir))
        trainer.state.save_to_json(str(run_dir / "trainer_state.json"))
        write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    trainer.accelerator.wait_for_everyone()
    return RunResult(run_dir, metrics)


def train(
    loaded: LoadedRecipe,
    output_dir: str | None = None,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> RunResult:
    """Train ``loaded`` into its run directory and return the metrics.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        result = train(load_recipe("medical-lora", ["max_steps=2"]), "runs/doc")
        result.metrics["steps"]  # 2
    """
    if loaded.recipe.stages:
        from ft_plugin.continual.stages import train_stages

        return train_stages(loaded, output_dir, resume, callbacks)
    if loaded.recipe.adapters:
        from ft_plugin.continual.adapters import train_task_adapters

        return train_task_adapters(loaded, output_dir, resume, callbacks)
    return run(prepare_run(loaded, output_dir, resume, callbacks))


def _compute_dtype(precision: Precision) -> torch.dtype:
    import torch

    return torch.bfloat16 if precision.bf16 else torch.float16 if precision.fp16 else torch.float32


def _ewc_penalty(recipe: Recipe, model: Any) -> Any:
    """The EWC penalty protecting `ewc.previous` (its Fisher is computed first when missing)."""
    from ft_plugin.continual.ewc import EwcPenalty, load_fisher
    from ft_plugin.continual.fisher import ensure_fisher
    from ft_plugin.hub.refs import resolve_folder

    previous = resolve_folder(recipe.ewc.previous or recipe.lora_model_dir)
    folder = ensure_fisher(previous, samples=recipe.ewc.fisher_samples)
    fisher, anchors = load_fisher(folder)
    return EwcPenalty(model, fisher, anchors, recipe.ewc.lambda_)


def _make_trainer(recipe, model, tokenizer, data, run_dir, precision, total, ewc=None):  # noqa: ANN001, ANN202
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    from ft_plugin.callbacks import CountingTrainerMixin, PeakMemoryCallback
    from ft_plugin.continual.ewc import ewc_trainer_class
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
    base = ewc_trainer_class(SFTTrainer) if ewc is not None else SFTTrainer
    trainer_class = type("FtPluginTrainer", (CountingTrainerMixin, base), {})
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if ewc is not None:
        trainer.ewc_penalty = ewc
    return trainer


def _collect_metrics(trainer, output, data, wall, trainable, total, start_step) -> dict[str, Any]:  # noqa: ANN001
    from ft_plugin.callbacks import peak_memory_mb

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
        evaluation = trainer.evaluate()
        metrics["eval_loss"] = round(float(evaluation["eval_loss"]), 6)
        metrics["eval_perplexity"] = round(math.exp(min(evaluation["eval_loss"], 50.0)), 4)
    last_logged = [h for h in history if "loss" in h]
    if last_logged:
        metrics["final_logged_loss"] = last_logged[-1]["loss"]
    return metrics


def _packing_label(args: Any) -> str:
    if args.packing:
        return f"bins of {args.max_length} tokens"
    return "rows, padding-free" if args.padding_free else "none (padded batches)"


def main(argv: list[str] | None = None) -> int:
    """Entry point for `accelerate launch -m ft_plugin.train RECIPE [--set K=V]...`."""
    from ft_plugin.cli.train import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
