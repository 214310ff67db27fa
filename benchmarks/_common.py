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
EMBEDDED = "embedded:smollm2-135m-instruct"


def require_shared(folder: str) -> Path:
    """``../shared/data/FOLDER``, or exit with a clear message when it is absent."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        print(
            f"skipped: {path} not found (the reference data lives beside the repo, in ../shared/data)"
        )
        raise SystemExit(0)
    return path


def embedded_tokenizer() -> Any:
    """The embedded model's tokenizer (it sizes rows to fit a training length)."""
    from transformers import AutoTokenizer

    from ft_plugin import models

    return AutoTokenizer.from_pretrained(models.resolve_base_model(EMBEDDED).path)


def pubmedqa_records(source: Path) -> list[tuple[str, dict[str, str], bool]]:
    """(PMID, question/context/answer row, in the standard test split) of every labelled
    PubMedQA row, in the file's order."""
    data = json.loads((source / "ori_pqal.json").read_text())
    test_ids = set(json.loads((source / "test_ground_truth.json").read_text()))
    return [
        (pmid, {"question": row["QUESTION"], "context": " ".join(row["CONTEXTS"]),
                "answer": row["final_decision"]}, pmid in test_ids)
        for pmid, row in data.items()
    ]  # fmt: skip


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
    """Write ``results/NAME.json`` with the command and the machine (a ``payload`` that
    carries its own, an earlier run's, keeps them)."""
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


def quality_intervals(target: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Paired bootstrap 95% intervals (``ft_plugin.evaluate.intervals``, 1,000 resamples,
    seed 0) of two models' held-out quality scored on the same rows, from the per-row
    outcomes a scorer recorded (``per_row``): target, baseline and target − baseline."""
    from ft_plugin.evaluate.intervals import RowStatistic, paired_bootstrap

    def statistics(scored: dict[str, Any]) -> dict[str, RowStatistic]:
        rows = scored["per_row"]
        if "nll_tokens" in rows:
            return {"perplexity": RowStatistic.perplexity([tuple(r) for r in rows["nll_tokens"]])}
        truth, predicted = rows["truth"], rows["predicted"]
        correct = [float(t == p) for t, p in zip(truth, predicted, strict=True)]
        return {"accuracy": RowStatistic.mean(correct),
                "macro_f1": RowStatistic.macro_f1(truth, predicted, rows["labels"])}  # fmt: skip

    return paired_bootstrap(statistics(target), statistics(baseline), resamples=1000, seed=0)
