"""Render BENCHMARKS.md from benchmarks/results/*.json (written by the scripts).

python benchmarks/render.py            # print the tables
python benchmarks/render.py --write    # BENCHMARKS.md = BENCHMARKS.head.md + tables
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS  # noqa: E402


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def header(result: dict) -> list[str]:
    m = result["machine"]
    return [f"Command: `{result['command']}`  ", f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}; "
            f"{m['date']}, commit {m['commit']}", ""]  # fmt: skip


def speed(result: dict) -> list[str]:
    lines = ["### Speed and memory (CPU)", "", *header(result)]
    lines += ["| configuration | effective tokens/s (median) | × baseline | peak RSS MB | × baseline | loss, last 10 steps |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    names = {"baseline": "plain TRL (documented SFTTrainer + LoRA, default SFTConfig)",
             "ours": "ft-plugin (packing 1×256, bf16 on AMX, no checkpointing)",
             "ours-nopack": "ft-plugin without packing (8 padded rows)"}  # fmt: skip
    for key, label in names.items():
        median = result["median"][key]
        ratio = result["ratio_vs_baseline"].get(key, {"tokens_per_second": 1.0, "peak_memory": 1.0})
        lines.append(f"| {label} | {median['tokens_per_second']:.1f} | {ratio['tokens_per_second']:.2f} | "
                     f"{median['peak_memory_mb']:.0f} | {ratio['peak_memory']:.2f} | {median['mean_loss_last_10']:.3f} |")  # fmt: skip
    per_rep = [
        f"rep {i + 1}: {o['tokens_per_second'] / b['tokens_per_second']:.2f}x"
        for i, (o, b) in enumerate(
            zip(result["runs"]["ours"], result["runs"]["baseline"], strict=True)
        )
    ]
    lines += ["", f"ft-plugin / baseline effective tokens/s per repetition: {', '.join(per_rep)}."]
    peaks = result["matmul_peak_gflops"]
    lines += ["", f"Matmul peak on this machine: fp32 {peaks['fp32']} GFLOP/s, bf16 {peaks['bf16']} GFLOP/s. "
              f"Training FLOP/s as a share of the bf16 peak (LoRA-aware 4·N per token + attention 12·L·ctx·d): "
              + ", ".join(f"{k} {v:.1%}" for k, v in result["bf16_peak_share"].items()), ""]  # fmt: skip
    return lines


def classification(name: str, title: str, result: dict) -> list[str]:
    lines = [
        f"### {title}",
        "",
        *header(result),
        "| model | accuracy | macro-F1 |",
        "|---|---:|---:|",
    ]
    lines.append(
        f"| embedded SmolLM2-135M-Instruct, zero-shot | {result['zero_shot']['accuracy']:.3f} | {result['zero_shot']['macro_f1']:.3f} |"
    )
    lines.append(
        f"| after LoRA fine-tuning | {result['tuned']['accuracy']:.3f} | {result['tuned']['macro_f1']:.3f} |"
    )
    train = result["train"]
    lines += ["", f"Evaluated on {result['eval_rows']} rows. Training: {train['steps']} steps, {train['train_tokens']} tokens, "
              f"{result['train_wall_seconds'] / 60:.1f} min wall clock ({train['tokens_per_second']:.0f} tokens/s).", ""]  # fmt: skip
    return lines


DESIGNS = {
    "family": "Tuned on the other family: the CUAD rows tune the adapter scored on ContractNLI and the "
    "reverse, so no scored task was seen in training ({epochs:g} epoch each, {minutes:.1f} min of training in all).",
    "folds": "2-fold cross-fitting within every task ({epochs:g} epoch each, {minutes:.1f} min of training).",
}


def legalbench(result: dict) -> list[str]:
    lines = [
        f"### LegalBench contract tasks, design `{result['design']}` (balanced accuracy, mean over tasks)",
        "",
        *header(result),
        "| family | tasks | rows | zero-shot | few-shot-tuned |",
        "|---|---:|---:|---:|---:|",
    ]
    for family, row in result["families"].items():
        lines.append(f"| {family} | {row['tasks']} | {row['rows']} | {row['zero_shot']:.3f} | {row['tuned']:.3f} |")  # fmt: skip
    overall = result["mean_over_tasks"]
    lines.append(f"| all | {len(result['tasks'])} | {sum(t['rows'] for t in result['tasks'].values())} | "
                 f"{overall['zero_shot']:.3f} | {overall['tuned']:.3f} |")  # fmt: skip
    better = sum(t["tuned"] > t["zero_shot"] for t in result["tasks"].values())
    worse = sum(t["tuned"] < t["zero_shot"] for t in result["tasks"].values())
    return [
        *lines,
        "",
        DESIGNS[result["design"]].format(
            epochs=result["epochs"], minutes=result["train_wall_seconds"] / 60
        )
        + f" Tuned beats zero-shot on {better} tasks, loses on {worse}; per-task numbers are in "
        "`benchmarks/results/legalbench.json` (6-8 rows per task, too few to read one task alone).",
        "",
    ]


def profile(result: dict) -> list[str]:
    lines = ["### Where a training step's time goes (torch.profiler, ft-plugin defaults)", "", *header(result),
             "| operator | self CPU ms | share | calls |", "|---|---:|---:|---:|"]  # fmt: skip
    lines += [f"| `{r['op']}` | {r['self_cpu_ms']:.0f} | {r['share']:.1%} | {r['calls']} |" for r in result["top_ops"][:10]]  # fmt: skip
    return [
        *lines,
        "",
        f"{result['steps']} steps after one warm-up step, packing {result['packing']}.",
        "",
    ]


def label_scoring(result: dict) -> list[str]:
    return ["### Evaluation: label log-likelihood scoring", "", *header(result),
            "| scoring | seconds | × naive |", "|---|---:|---:|",
            f"| one full pass per candidate (before) | {result['naive_seconds']:.1f} | 1.00 |",
            f"| shared prompt cache, batch {result['batch_size']} (ft-plugin) | {result['shared_prefix_seconds']:.1f} | "
            f"{result['speedup']:.2f} |", "",
            f"{result['rows']} TFNS rows, three labels; largest score difference {result['max_abs_diff']:.1e} nats, "
            f"same predicted label on {result['same_label']}/{result['rows']}.", ""]  # fmt: skip


def continual(result: dict) -> list[str]:
    lines = ["### Forgetting: task A (medical) perplexity after task B (legal)", "", *header(result),
             "| after | medical perplexity |", "|---|---:|"]  # fmt: skip
    lines += [f"| {name} | {value:.3f} |" for name, value in result["task_a_perplexity"].items()]
    return [*lines, "", f"{result['steps']} steps per task, EWC λ = {result['lambda']}.", ""]


def main() -> None:
    out: list[str] = []
    if result := load("speed"):
        out += speed(result)
    if result := load("profile"):
        out += profile(result)
    if result := load("label_scoring"):
        out += label_scoring(result)
    if result := load("tfns"):
        out += classification("tfns", "TFNS financial news sentiment (valid.csv)", result)
    if result := load("pubmedqa"):
        out += classification("pubmedqa", "PubMedQA PQA-L (500 test PMIDs)", result)
    for name in ("legalbench", "legalbench_folds"):
        if result := load(name):
            out += legalbench(result)
    for path in sorted(RESULTS.glob("continual_ewc*.json")):
        out += continual(json.loads(path.read_text()))
    tables = "\n".join(out)
    if "--write" not in sys.argv:
        print(tables)
        return
    head = (REPO / "benchmarks" / "BENCHMARKS.head.md").read_text(encoding="utf-8")
    target = REPO / "BENCHMARKS.md"
    staging = target.with_suffix(".md.tmp")
    staging.write_text(f"{head.rstrip()}\n\n## Results\n\n{tables.rstrip()}\n", encoding="utf-8")
    staging.replace(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
