"""Forgetting on the embedded model: task A (medical), then task B (legal) with and
without EWC, and with replay. Reports task A's perplexity before and after B.

    python benchmarks/continual_ewc.py [--steps 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lam", type=float, default=5000.0)
    args = parser.parse_args()
    from ft_plugin.config import load_recipe
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation
    from ft_plugin.train import train

    runs = REPO / "runs" / "bench-continual"
    common = {
        "max_steps": args.steps,
        "report_to": "none",
        "save_steps": 100000,
        "val_set_size": 0.1,
    }
    task_a = train(load_recipe("medical-lora", common), str(runs / "a")).run_dir
    medical_eval = runs / "a_heldout.jsonl"
    import json

    from ft_plugin.data import build_training_data

    held = build_training_data(load_recipe("medical-lora", common).recipe).eval
    medical_eval.write_text(
        "".join(
            json.dumps({"messages": r["prompt"] + r["completion"]}, ensure_ascii=False) + "\n"
            for r in held
        )
    )
    legal = {
        "datasets": [{"path": "builtin:legal", "type": "legal"}],
        "lora_model_dir": str(task_a),
    }
    variants: dict[str, dict] = {
        "B, no protection": {},
        "B + EWC": {"ewc": {"lambda": args.lam, "fisher_samples": 64}},
        "B + replay 0.2": {
            "replay": {"datasets": [{"path": "builtin:medical", "type": "medical"}], "ratio": 0.2}
        },
    }

    def ppl(run: Path) -> float:
        settings = EvalSettings(data=str(medical_eval), template="medical", metrics=["perplexity"])
        return run_evaluation(str(run), settings)[0].models["target"]["perplexity"]

    table = {"after A": ppl(task_a)}
    for name, extra in variants.items():
        run = train(
            load_recipe("medical-lora", {**common, **legal, **extra}),
            str(runs / name.replace(" ", "_").replace(",", "").replace("+", "plus")),
        )
        table[name] = ppl(run.run_dir)
        print(f"| {name} | {table[name]:.3f} |", flush=True)
    save("continual_ewc", {"steps": args.steps, "lambda": args.lam, "task_a_perplexity": table})


if __name__ == "__main__":
    main()
