"""The recipe as TRL's `SFTConfig`: one visible table, plus what is derived per machine.

Precision (`bf16: auto`, `tf32` on this CPU or GPU), gradient checkpointing by model size
(and its offload), how `sample_packing` maps onto TRL's padding-free rows or BFD bins, the
evaluation / checkpoint schedule from Axolotl's per-epoch keys, the optimizer by Axolotl's
or transformers' name, and what several processes get (engine/launch.py). Where a key
cannot do its job on this machine, ``run_notes`` says so in one line, never silently.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.config.schema.training import (
    AXOLOTL_OPTIMIZERS,
    optim_args_text,
)
from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir

# The precision rule lives below the methods layer (the estimate uses it too); its names
# stay importable from here.
from ft_plugin.utils.checkpointing import (
    choose_gradient_checkpointing as choose_gradient_checkpointing,
)
from ft_plugin.utils.precision import Precision as Precision
from ft_plugin.utils.precision import choose_precision as choose_precision
from ft_plugin.utils.precision import cpu_has_fast_bf16 as cpu_has_fast_bf16

from .launch import distributed_arguments, fsdp_settings, world_size
from .schedules import scheduler_arguments

if TYPE_CHECKING:
    import torch
    from trl import SFTConfig

    from ft_plugin.config import Recipe

# Axolotl recipe key -> SFTConfig / TrainingArguments field. Everything else is derived
# in build_sft_config (precision, schedule, optimizer, packing, loss masking).
AXOLOTL_TO_SFT: dict[str, str] = {
    "micro_batch_size": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "num_epochs": "num_train_epochs",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "logging_steps": "logging_steps",
    "save_total_limit": "save_total_limit",
    "seed": "seed",
    "dataloader_num_workers": "dataloader_num_workers",
}
# Passed only when the recipe sets them (transformers' defaults otherwise), as Axolotl does.
AXOLOTL_TO_SFT_IF_SET: dict[str, str] = {
    "adam_beta1": "adam_beta1",
    "adam_beta2": "adam_beta2",
    "adam_epsilon": "adam_epsilon",
    "remove_unused_columns": "remove_unused_columns",
    "optim_target_modules": "optim_target_modules",
    "accelerator_config": "accelerator_config",
}


def checkpointing_arguments(
    recipe: Recipe, enabled: bool, accelerator: bool | None = None
) -> dict[str, Any]:
    """``activation_checkpointing`` and its kwargs: Axolotl's `gradient_checkpointing_kwargs`
    (``use_reentrant: false`` unless given), plus ``offload`` for `gradient_checkpointing:
    offload` on an accelerator (transformers keeps the saved activations in pinned host
    memory; on a CPU they are in host memory already, and pinning needs an accelerator)."""
    import torch

    if accelerator is None:
        accelerator = torch.accelerator.is_available()
    fsdp = fsdp_settings(recipe) if world_size() > 1 else None
    if not enabled or (fsdp or {}).get("activation_checkpointing"):
        return {"activation_checkpointing": False}  # FSDP checkpoints itself: not both
    kwargs = {"use_reentrant": False, **(recipe.gradient_checkpointing_kwargs or {})}
    if recipe.gradient_checkpointing in ("offload", "offload_disk") and accelerator:
        kwargs["offload"] = True
    return {"activation_checkpointing": True, "activation_checkpointing_kwargs": kwargs}


def choose_tf32(recipe: Recipe, gpu_has_tf32: bool) -> bool | None:
    """TrainingArguments' ``tf32``: True only on a GPU with TF32 units (transformers refuses
    it elsewhere); ``False`` turns TF32 off; None leaves torch's default."""
    if recipe.tf32 == "auto" or recipe.tf32 is True:
        return True if gpu_has_tf32 else None
    return False


# Optimizers that need a package beyond torch: name prefix or name -> (module, pip name).
OPTIMIZER_PACKAGES: dict[str, tuple[str, str]] = {
    "adamw_bnb_8bit": ("bitsandbytes", "bitsandbytes"),
    "adamw_8bit": ("bitsandbytes", "bitsandbytes"),
    "ademamix": ("bitsandbytes", "bitsandbytes"),
    "lion_": ("bitsandbytes", "bitsandbytes"),
    "paged_": ("bitsandbytes", "bitsandbytes"),
    "rmsprop_bnb": ("bitsandbytes", "bitsandbytes"),
    "adamw_torch_4bit": ("torchao", "torchao"),
    "adamw_torch_8bit": ("torchao", "torchao"),
    "galore_": ("galore_torch", "galore-torch"),
    "apollo_": ("apollo_torch", "apollo-torch"),
    "lomo": ("lomo_optim", "lomo-optim"),
    "adalomo": ("lomo_optim", "lomo-optim"),
    "grokadamw": ("grokadamw", "grokadamw"),
    "schedule_free_": ("schedulefree", "schedulefree"),
    "stable_adamw": ("optimi", "torch-optimi"),
    "adamw_anyprecision": ("torchdistx", "torchdistx"),
    "adamw_torch_xla": ("torch_xla", "torch-xla"),
    "adamw_torch_npu_fused": ("torch_npu", "torch-npu"),
}
# Axolotl optimizers that are transformers ones under another name.
AXOLOTL_EQUIVALENT_OPTIMIZERS = {
    "ao_adamw_4bit": "adamw_torch_4bit",
    "ao_adamw_8bit": "adamw_torch_8bit",
}
FALLBACK_OPTIMIZER = "adamw_torch"


def resolve_optimizer(name: str, cuda: bool) -> tuple[str, str | None]:
    """transformers' ``optim`` for an Axolotl / transformers optimizer name, and the line to
    print when what runs differs from what was asked.

    Example:
        >>> resolve_optimizer("adamw_torch_fused", cuda=False)
        ('adamw_torch_fused', None)
        >>> resolve_optimizer("came_pytorch", cuda=False)[0]
        'adamw_torch'
    """
    fallback = f"{FALLBACK_OPTIMIZER} (AdamW) runs instead"
    optim = AXOLOTL_EQUIVALENT_OPTIMIZERS.get(name, name)
    if optim in AXOLOTL_OPTIMIZERS:
        return FALLBACK_OPTIMIZER, f"optimizer: {name} is Axolotl's own optimizer class; {fallback}"
    package = next((v for k, v in OPTIMIZER_PACKAGES.items() if optim.startswith(k)), None)
    if package and importlib.util.find_spec(package[0]) is None:
        return FALLBACK_OPTIMIZER, (f"optimizer: {name} needs {package[1]}, not installed "
                                    f"(pip install {package[1]}); {fallback}")  # fmt: skip
    if optim.startswith("paged_") and not cuda:
        return optim, (f"optimizer: {name}: paging the optimizer state needs CUDA; on a CPU "
                       "bitsandbytes runs the same optimizer without paging")  # fmt: skip
    return optim, None


def per_epoch(times: int, num_epochs: float) -> tuple[str, float | None]:
    """Axolotl's `evals_per_epoch` / `saves_per_epoch`: a (strategy, steps) pair, steps being
    the fraction 1/(times × num_epochs) of the run's steps, or once per epoch at most.

    Example:
        >>> per_epoch(4, 1.0), per_epoch(1, 1.0), per_epoch(2, 2.0)
        (('steps', 0.25), ('epoch', None), ('steps', 0.25))
    """
    fraction = 1.0 / (times * num_epochs)
    return ("steps", fraction) if fraction < 1 else ("epoch", None)


def schedule_arguments(recipe: Recipe, has_eval: bool) -> dict[str, Any]:
    """eval_strategy / eval_steps, save_strategy / save_steps and warmup_steps, as Axolotl's
    builder sets them (steps win over per-epoch counts, which win over a bare strategy)."""
    evals = _eval_schedule(recipe, has_eval)
    saves = _save_schedule(recipe, evals)
    warmup = recipe.warmup_ratio if recipe.warmup_ratio else recipe.warmup_steps
    return {**evals, **saves, "warmup_steps": warmup}


def _eval_schedule(recipe: Recipe, has_eval: bool) -> dict[str, Any]:
    if not has_eval or recipe.eval_strategy == "no":
        return {"eval_strategy": "no", "eval_steps": None}
    if recipe.eval_steps:
        return {"eval_strategy": "steps", "eval_steps": recipe.eval_steps}
    if recipe.evals_per_epoch:
        strategy, steps = per_epoch(recipe.evals_per_epoch, recipe.num_epochs)
        return {"eval_strategy": strategy, "eval_steps": steps}
    if recipe.eval_strategy or recipe.early_stopping_patience:
        return {"eval_strategy": recipe.eval_strategy or "epoch", "eval_steps": None}
    return {"eval_strategy": "no", "eval_steps": None}


def _save_schedule(recipe: Recipe, evals: dict[str, Any]) -> dict[str, Any]:
    if recipe.save_steps:
        return {"save_strategy": "steps", "save_steps": recipe.save_steps}
    if recipe.saves_per_epoch:
        strategy, steps = per_epoch(recipe.saves_per_epoch, recipe.num_epochs)
        return {"save_strategy": strategy, "save_steps": steps or 100}
    if recipe.save_strategy not in (None, "steps"):
        return {"save_strategy": recipe.save_strategy}
    if recipe.save_strategy is None and evals["eval_strategy"] != "no":
        # a checkpoint at each evaluation (what early stopping's best-model reload needs)
        return {"save_strategy": evals["eval_strategy"], "save_steps": evals["eval_steps"] or 100}
    at_evals = evals["eval_steps"] if evals["eval_strategy"] == "steps" else None
    return {"save_strategy": "steps", "save_steps": at_evals or 100}


def sampling_arguments(recipe: Recipe) -> dict[str, Any]:
    """transformers' ``train_sampling_strategy``: `curriculum_sampling` draws the rows in
    order (Axolotl checks it first), `group_by_length` batches rows of similar length,
    except with `sample_packing`, whose batches carry no padding (Axolotl ignores it too).

    Example:
        >>> from ft_plugin.config import Recipe
        >>> r = Recipe.model_validate({"datasets": [{"path": "a.jsonl"}], "group_by_length": True})
        >>> sampling_arguments(r)
        {'train_sampling_strategy': 'group_by_length'}
    """
    if recipe.curriculum_sampling:
        return {"train_sampling_strategy": "sequential"}
    if recipe.group_by_length and not recipe.sample_packing:
        return {"train_sampling_strategy": "group_by_length"}
    return {"train_sampling_strategy": "random"}


def packing_arguments(recipe: Recipe) -> dict[str, Any]:
    """SFTConfig's packing fields for `sample_packing` (see the schema's description).

    `true`/`rows` is TRL's padding-free collation of each micro-batch: the rows a step
    sees are those it would see unpacked. The data stage has already dropped rows longer
    than `sequence_len` and cut raw text into windows, so no truncation is asked of TRL
    (it refuses ``max_length`` with padding-free batches that are not bin-packed).
    `pad_to_sequence_len` pads unpacked batches to `sequence_len` (packed ones stay
    padding-free); `eval_sample_packing` sets TRL's ``eval_packing`` (the trainer also
    collates the eval set padded when it is `false`).
    """
    mode = recipe.sample_packing
    pad = recipe.sequence_len if recipe.pad_to_sequence_len and not mode else None
    # TRL's eval_packing bin-packs the eval set (bins only); padding-free rows (`true`) are
    # the collator's, which pads the eval set instead when eval_sample_packing is false.
    eval_bins = mode == "bins" and recipe.eval_sample_packing is not False
    common = {"pad_to_multiple_of": pad, "eval_packing": eval_bins}
    if mode == "bins":
        return {"packing": True, "packing_strategy": "bfd", "padding_free": True,
                "max_length": recipe.sequence_len, **common}  # fmt: skip
    if mode:
        return {"packing": False, "padding_free": True, "max_length": None, **common}
    return {"packing": False, "padding_free": False, "max_length": recipe.sequence_len, **common}


def training_arguments(
    recipe: Recipe,
    run_dir: Path,
    *,
    precision: Precision,
    gradient_checkpointing: bool,
    has_eval: bool,
) -> dict[str, Any]:
    """TrainingArguments' fields every trainer of a run shares (SFT and preference): the
    table above plus derived settings."""
    import torch
    from transformers.utils import is_torch_tf32_available

    from ft_plugin.callbacks.trackers import report_targets

    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {sft: getattr(recipe, key) for key, sft in AXOLOTL_TO_SFT.items()}
    kwargs.update({sft: getattr(recipe, key) for key, sft in AXOLOTL_TO_SFT_IF_SET.items()
                   if getattr(recipe, key) is not None})  # fmt: skip
    kwargs.update(
        output_dir=str(RunDir(run_dir).checkpoints),
        per_device_eval_batch_size=recipe.eval_batch_size or recipe.micro_batch_size,
        max_steps=recipe.max_steps or -1,
        optim=resolve_optimizer(recipe.optimizer, cuda)[0],
        optim_args=optim_args_text(recipe.optim_args),
        bf16=precision.bf16,
        fp16=precision.fp16,
        tf32=choose_tf32(recipe, is_torch_tf32_available()),
        use_cpu=not cuda,  # transformers refuses CPU bf16 without it
        report_to=report_targets(recipe),
        run_name=recipe.wandb_name or recipe.wandb_run_id,
        **checkpointing_arguments(recipe, gradient_checkpointing),
        **schedule_arguments(recipe, has_eval),
        **scheduler_arguments(recipe),
        **sampling_arguments(recipe),
        **distributed_arguments(recipe),
        # Early stopping keeps the best checkpoint, which needs aligned evaluation and saves.
        load_best_model_at_end=bool(recipe.early_stopping_patience),
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        dataset_num_proc=None,
        disable_tqdm=False,
        save_only_model=False,
        logging_first_step=True,
    )
    return kwargs


def checked_config(config_class: type, kwargs: dict[str, Any]) -> Any:
    """``config_class(**kwargs)``; transformers' refusal of a combination of settings (e.g.
    load-best with unaligned evaluation and save steps) comes back as one line."""
    try:
        return config_class(**kwargs)
    except ValueError as exc:
        raise UserError(f"training settings: {str(exc).strip().splitlines()[0]}") from None


def build_sft_config(
    recipe: Recipe,
    run_dir: Path,
    *,
    precision: Precision,
    gradient_checkpointing: bool,
    has_eval: bool,
) -> SFTConfig:
    """The `SFTConfig` for a recipe: the shared training arguments, the loss and packing."""
    from trl import SFTConfig

    kwargs = training_arguments(recipe, run_dir, precision=precision,
                                gradient_checkpointing=gradient_checkpointing, has_eval=has_eval)  # fmt: skip
    kwargs.update(
        loss_type="dft" if recipe.use_dft else "nll",
        completion_only_loss=not recipe.train_on_inputs,
        **packing_arguments(recipe),
    )
    return checked_config(SFTConfig, kwargs)


def compute_dtype(precision: Precision) -> torch.dtype:
    import torch

    return torch.bfloat16 if precision.bf16 else torch.float16 if precision.fp16 else torch.float32
