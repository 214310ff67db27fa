"""One line for the user from the model stage."""

from __future__ import annotations

import os
import sys


def note(line: str) -> None:
    """One ``ft-plugin: LINE`` on stderr, from the main process only (the rank rule of
    ``engine.launch.is_main_process``, which sits above this module)."""
    for variable in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if variable in os.environ and os.environ[variable] != "0":
            return
    print(f"ft-plugin: {line}", file=sys.stderr)
