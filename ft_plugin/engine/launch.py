"""How this process was launched (one of many ranks, accelerate's one-process trap), and what
a recipe asks of several processes: DeepSpeed, FSDP, DDP (as TrainingArguments fields)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.config.schema.distributed import FSDP1_ONLY
from ft_plugin.errors import UserError

if TYPE_CHECKING:
    from ft_plugin.config import Recipe


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed launch (torchrun, accelerate, MPI)."""
    for variable in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if variable in os.environ:
            return os.environ[variable] == "0"
    return True


def quiet(*args: Any, **kwargs: Any) -> None:
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


# Axolotl's DeepSpeed JSON files (Apache-2.0, copied from its 0.21.0 release), so that
# `deepspeed: deepspeed_configs/zero3_bf16.json` means what it means in Axolotl.
DEEPSPEED_CONFIGS = (
    Path(__file__).resolve().parent.parent / "recipes" / "accelerate" / "deepspeed_configs"
)


def world_size() -> int:
    """Processes in this launch (torchrun / accelerate set WORLD_SIZE; MPI its own)."""
    for variable in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 1


def builtin_deepspeed_configs() -> list[str]:
    """Axolotl's builtin DeepSpeed config names, as its configs write them."""
    return sorted(f"deepspeed_configs/{p.name}" for p in DEEPSPEED_CONFIGS.glob("*.json"))


def resolve_deepspeed(value: str | dict[str, Any]) -> dict[str, Any]:
    """The DeepSpeed config a recipe names: an inline mapping, a JSON file, or an Axolotl
    builtin (``deepspeed_configs/zero3_bf16.json``, also without the folder or ``.json``).

    Example:
        >>> resolve_deepspeed("deepspeed_configs/zero2.json")["zero_optimization"]["stage"]
        2
    """
    if isinstance(value, dict):
        return dict(value)
    path = Path(value).expanduser()
    if not path.is_file():
        name = Path(value).name if Path(value).suffix else f"{Path(value).name}.json"
        path = DEEPSPEED_CONFIGS / name
    if not path.is_file():
        raise UserError(
            f"deepspeed: {value}: no such file; give a DeepSpeed JSON file or one of Axolotl's: "
            f"{', '.join(builtin_deepspeed_configs())}"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"deepspeed: {value}: not a JSON file ({exc})") from None
    if not isinstance(config, dict):
        raise UserError(f"deepspeed: {value}: expected a JSON object of DeepSpeed settings")
    return config


def fsdp_settings(recipe: Recipe) -> dict[str, Any] | None:
    """transformers' ``fsdp_config`` (FSDP2) from Axolotl's fsdp_config / fsdp / fsdp_version.

    Example:
        >>> from ft_plugin.config import Recipe
        >>> r = Recipe.model_validate({"datasets": [{"path": "x"}], "fsdp": ["full_shard", "offload"],
        ...                            "fsdp_config": {"fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer"}})
        >>> fsdp_settings(r)
        {'version': 2, 'transformer_layer_cls_to_wrap': 'LlamaDecoderLayer', 'reshard_after_forward': True, 'cpu_offload': True}
    """
    if recipe.fsdp_config is None and not recipe.fsdp:
        return None
    given = recipe.fsdp_config.model_dump(exclude_none=True) if recipe.fsdp_config else {}
    out: dict[str, Any] = {"version": 2}
    for ours, theirs in FSDP_KEYS.items():
        if ours in given:
            out[theirs] = given[ours]
    strategy = given.get("sharding_strategy")
    if strategy and "reshard_after_forward" not in out:
        out["reshard_after_forward"] = strategy == "FULL_SHARD"
    options = recipe.fsdp.split() if isinstance(recipe.fsdp, str) else recipe.fsdp or []
    if "full_shard" in options or "shard_grad_op" in options:
        out.setdefault("reshard_after_forward", "full_shard" in options)
    if "offload" in options:
        out.setdefault("cpu_offload", True)
    return out


# Axolotl's FSDPConfig field -> transformers' fsdp_config key (the rest have no equivalent).
FSDP_KEYS = {
    "activation_checkpointing": "activation_checkpointing",
    "offload_params": "cpu_offload",
    "cpu_ram_efficient_loading": "cpu_ram_efficient_loading",
    "state_dict_type": "state_dict_type",
    "auto_wrap_policy": "auto_wrap_policy",
    "transformer_layer_cls_to_wrap": "transformer_layer_cls_to_wrap",
    "min_num_params": "min_num_params",
    "reshard_after_forward": "reshard_after_forward",
}


def distributed_arguments(recipe: Recipe, processes: int | None = None) -> dict[str, Any]:
    """TrainingArguments' ``deepspeed`` / ``fsdp`` / ``fsdp_config`` / ``ddp_*`` for a recipe.

    FSDP is passed only when several processes run (transformers refuses it on one); a
    DeepSpeed config is passed whenever set, and needs the ``deepspeed`` package.
    """
    processes = world_size() if processes is None else processes
    out: dict[str, Any] = {}
    if recipe.ddp_find_unused_parameters is not None:
        out["ddp_find_unused_parameters"] = recipe.ddp_find_unused_parameters
    if recipe.deepspeed:
        if importlib.util.find_spec("deepspeed") is None:
            raise UserError(
                "deepspeed: DeepSpeed is not installed: pip install deepspeed (it builds its "
                "kernels with the CUDA toolkit), or remove deepspeed: to train without it"
            )
        out["deepspeed"] = resolve_deepspeed(recipe.deepspeed)
    fsdp = fsdp_settings(recipe)
    if fsdp is not None and processes > 1:
        out.update(fsdp=True, fsdp_config=fsdp)
    return out


def distributed_notes(recipe: Recipe, processes: int | None = None) -> list[str]:
    """One line per distributed setting that does nothing in this launch (said, not hidden)."""
    processes = world_size() if processes is None else processes
    notes = []
    if fsdp_settings(recipe) is not None and processes == 1:
        notes.append(
            "fsdp_config: FSDP shards the model across processes and this is one process: it "
            "trains unsharded; run accelerate launch --num_processes N -m ft_plugin.train RECIPE"
        )
    given = recipe.fsdp_config.model_dump(exclude_none=True) if recipe.fsdp_config else {}
    for key in (*FSDP1_ONLY, "mixed_precision_policy", "cpu_offload_pin_memory"):
        if key in given:
            why = ("an FSDP1 setting; FSDP2 has no such option" if key in FSDP1_ONLY
                   else "not an option of accelerate's FSDP2 plugin; precision follows "
                   "bf16 / fp16" if key == "mixed_precision_policy"
                   else "not an option of accelerate's FSDP2 plugin")  # fmt: skip
            notes.append(f"fsdp_config.{key}: no effect here: {why}")
    if recipe.ddp_find_unused_parameters is not None and processes == 1:
        notes.append("ddp_find_unused_parameters: no effect in one process (DDP only)")
    return notes
