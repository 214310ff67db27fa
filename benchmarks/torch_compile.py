"""Does ``torch.compile`` (inductor, gcc on this CPU) make a LoRA step faster here?

    python benchmarks/torch_compile.py [--steps 8]

Trains ``finance-sentiment-lora`` (its shipped batch shape) for ``--steps`` steps three
ways, each in its own process: eager; every decoder layer's MLP compiled
(``dynamic=True``: packed micro-batches change length every step); every whole decoder
layer compiled. Reports the first step (compilation included) and the mean of the steps
after the second.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, save  # noqa: E402

MODES = ("eager", "mlp", "layer")


def measure(mode: str, steps: int) -> dict:
    from transformers import TrainerCallback

    from ft_plugin.config import load_recipe
    from ft_plugin.engine import prepare_run

    overrides = {"max_steps": steps, "val_set_size": 0, "report_to": "none", "save_steps": 100000}
    loaded = load_recipe("finance-sentiment-lora", overrides)
    ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_run(loaded, tmp + "/run", callbacks=[StepClock()])
        layers = prepared.trainer.model.get_base_model().model.layers
        for layer in layers:
            if mode == "mlp":
                layer.mlp.compile(dynamic=True)
            elif mode == "layer":
                layer.compile(dynamic=True)
        started = time.perf_counter()
        prepared.trainer.train()
    durations = [b - a for a, b in zip([started, *ends[:-1]], ends, strict=True)]
    return {"mode": mode, "first_step_seconds": round(durations[0], 2),
            "later_step_seconds": round(sum(durations[2:]) / len(durations[2:]), 3),
            "total_seconds": round(ends[-1] - started, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return
    results = []
    for mode in MODES:
        done = subprocess.run([sys.executable, __file__, "--one", mode, "--steps", str(args.steps)],
                              capture_output=True, text=True, cwd=REPO, check=True)  # fmt: skip
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    save("torch_compile", {"steps": args.steps, "modes": results})


if __name__ == "__main__":
    main()
