"""The recipe as TRL's `SFTConfig`: one visible table, plus what is derived per machine.

Precision (`bf16: auto` on this CPU or GPU), gradient checkpointing by model size, and
how `sample_packing` maps onto TRL's padding-free rows or BFD bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.rundir import RunDir

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


@dataclass(frozen=True)
class Precision:
    """Mixed-precision choice: autocast flags and the dtype to load base weights in."""

    bf16: bool
    fp16: bool
    load_dtype: torch.dtype

    @property
    def label(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"


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
        output_dir=str(RunDir(run_dir).checkpoints),
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


def compute_dtype(precision: Precision) -> torch.dtype:
    import torch

    return torch.bfloat16 if precision.bf16 else torch.float16 if precision.fp16 else torch.float32
