"""Where a training step's time goes: torch.profiler over a few ft-plugin steps on the CPU.

    python benchmarks/profile_step.py [--steps 4] [--packing true|false]

Prints the operators with the most self CPU time and writes them to
benchmarks/results/profile.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--packing", default="true")
    args = parser.parse_args()
    import tempfile

    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    from ft_plugin.config import load_recipe, parse_set_options
    from ft_plugin.engine import prepare_run

    overrides = {
        "max_steps": args.steps + 1,
        "val_set_size": 0,
        "report_to": "none",
        "save_steps": 100000,
        **parse_set_options([f"sample_packing={args.packing}"]),  # --packing as --set reads it
    }
    loaded = load_recipe("finance-sentiment-lora", overrides)

    class Profile(TrainerCallback):
        """Skip the first (warm-up) step, profile the rest."""

        def __init__(self) -> None:
            self.profiler = profile(activities=[ProfilerActivity.CPU])

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            if state.global_step == 1:
                self.profiler.__enter__()

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            self.profiler.__exit__(None, None, None)

    callback = Profile()
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_run(loaded, tmp + "/run", callbacks=[callback])
        prepared.trainer.train()
    events = callback.profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    rows = [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
             "share": round(e.self_cpu_time_total / total, 4), "calls": e.count} for e in top]  # fmt: skip
    for row in rows:
        print(f"{row['share']:6.1%}  {row['self_cpu_ms']:9.1f} ms  {row['calls']:6d}  {row['op']}")
    save("profile", {"steps": args.steps, "packing": args.packing, "top_ops": rows})


if __name__ == "__main__":
    main()
