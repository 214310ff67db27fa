"""The single-run training engine: a recipe in, one run directory out.

``prepare_run`` checks and loads everything (nothing written yet), ``run`` trains and
writes the run directory. Stages, task adapters and the command line sit above.
"""

from .launch import check_launch, is_main_process, launch_notes
from .run import PreparedRun, RunResult, count_parameters, prepare_run, run
from .sft_config import (
    AXOLOTL_TO_SFT,
    Precision,
    build_sft_config,
    choose_gradient_checkpointing,
    choose_precision,
    cpu_has_fast_bf16,
    packing_arguments,
)

__all__ = [
    "AXOLOTL_TO_SFT",
    "Precision",
    "PreparedRun",
    "RunResult",
    "build_sft_config",
    "check_launch",
    "choose_gradient_checkpointing",
    "choose_precision",
    "count_parameters",
    "cpu_has_fast_bf16",
    "is_main_process",
    "launch_notes",
    "packing_arguments",
    "prepare_run",
    "run",
]
