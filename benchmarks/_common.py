"""Shared helpers for the benchmark scripts (not tests: they take minutes to hours)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"


def require_shared(folder: str) -> Path:
    """``../shared/data/FOLDER``, or exit with a clear message when it is absent."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        print(
            f"skipped: {path} not found (the reference data lives beside the repo, in ../shared/data)"
        )
        raise SystemExit(0)
    return path


def machine() -> dict[str, Any]:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results: {path}")
    return path


def train_or_reuse(loaded: Any, output_dir: Path, *, reuse: bool) -> tuple[Path, dict[str, Any]]:
    """Train ``loaded`` into ``output_dir``, or (``reuse``) evaluate a finished run there.

    A finished run is one with ``metrics.json``; its ``wall_seconds`` is the training time
    the trainer measured when it ran, so results stay comparable. The run directory's
    own recipe check refuses a run trained from a different recipe.
    """
    from ft_plugin.rundir import RunDir
    from ft_plugin.train import train

    run = RunDir(output_dir)
    if reuse and run.is_finished():
        run.check_reuse(loaded.to_yaml(), resume=False)
        print(f"reusing the finished run in {output_dir} (trained earlier; not retrained)")
        return output_dir, run.metrics()
    result = train(loaded, str(output_dir))
    return result.run_dir, result.metrics
