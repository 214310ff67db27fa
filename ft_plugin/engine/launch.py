"""How this process was launched: one of many ranks, or accelerate's one-process trap."""

from __future__ import annotations

import os
from typing import Any

from ft_plugin.errors import UserError


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
