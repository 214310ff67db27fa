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
from render_claims import claims_section  # noqa: E402
from render_deploy import deploy_section, deploy_summary  # noqa: E402
from render_preference import (  # noqa: E402
    dpo_quality_section,
    dpo_quality_summary,
    dpo_section,
    dpo_summary,
)


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def header(result: dict) -> list[str]:
    m = result["machine"]
    return [f"Command: `{result['command']}`  ", f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}; "
            f"{m['date']}, commit {m['commit']}", ""]  # fmt: skip


SIDES = {"trl": "plain TRL (documented SFTTrainer + LoRA)", "ft-plugin": "ft-plugin"}
ROLES = {"trl": "baseline", "ft-plugin": "target"}  # in a case's quality_intervals


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def _side(runs: list[dict], key: str) -> float:
    return _median([r[key] for r in runs])


def _accuracy(runs: list[dict], key: str) -> float:
    return _median([r["held_out"][key] for r in runs])


def _quality_columns(runs: list[dict], intervals: dict | None, role: str) -> tuple[str, str]:
    if "accuracy" in runs[0]["held_out"]:
        return (f"{_accuracy(runs, 'accuracy'):.3f}{interval(intervals, role, 'accuracy')}",
                f"macro-F1 {_accuracy(runs, 'macro_f1'):.3f}{interval(intervals, role, 'macro_f1')}")  # fmt: skip
    return (
        f"ppl {_accuracy(runs, 'perplexity'):.2f}{interval(intervals, role, 'perplexity', 2)}",
        "",
    )


NO_INTERVALS = (
    "no interval: this results file predates per-row outcomes; rerunning the script records them"
)


INTERVAL_NOTE = (
    " (change: ft-plugin − TRL; in brackets paired bootstrap 95% intervals, the same "
    "rows resampled for both sides, first repetition)"
)


def interval(intervals: dict | None, role: str, metric: str, digits: int = 3) -> str:
    """`` [low, high]`` of a paired bootstrap 95% interval, or nothing when not recorded."""
    bounds = (intervals or {}).get(role, {}).get(metric)
    if not bounds or bounds[0] is None:
        return ""
    return f" [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def change(
    intervals: dict | None, metric: str, value: float, scale: float = 1.0, unit: str = ""
) -> str:
    """A difference with its interval, marked when the interval contains zero."""
    bounds = (intervals or {}).get("delta", {}).get(metric)
    if not bounds or bounds[0] is None:
        return f"{scale * value:+.1f}{unit}"
    low, high = scale * bounds[0], scale * bounds[1]
    verdict = "not distinguishable from no change" if low <= 0 <= high else "beyond noise"
    return f"{scale * value:+.1f}{unit} [{low:+.1f}, {high:+.1f}], {verdict}"


def speed_case(name: str, case: dict, result: dict, title: str) -> list[str]:
    data = "the recipe's builtin rows" if name == "medical" else "240 TFNS rows"
    lines = [f"### {title}", "", *header(result),
             f"Recipe `{case.get('recipe', 'finance-sentiment-lora')}`, overrides "
             f"`{' '.join(case['overrides']) or '(none)'}`; {data}, {len(case['runs']['trl'])} repetition(s) per "
             "side, alternating; medians.", "",
             "| side | process wall s | training s | steps | rows / step | tokens / step | peak RSS MB | "
             "held-out quality | | model FLOP/s ÷ bf16 peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for side, label in SIDES.items():
        runs = case["runs"][side]
        steps = _side(runs, "steps")
        rows = (
            _side(runs, "rows_per_step")
            if "rows_per_step" in runs[0]
            else _side(runs, "train_rows") / steps
        )
        tokens = _side(runs, "train_tokens") / steps if "train_tokens" in runs[0] else float("nan")
        share = f"{_side(runs, 'bf16_peak_share'):.1%}" if "bf16_peak_share" in runs[0] else "—"
        quality, extra = _quality_columns(runs, case.get("quality_intervals"), ROLES[side])
        lines.append(f"| {label} | {_side(runs, 'wall_seconds_process'):.0f} | {_side(runs, 'train_seconds'):.0f} | "
                     f"{steps:.0f} | {rows:.1f} | {tokens:.0f} | {_side(runs, 'peak_rss_mb'):.0f} | "
                     f"{quality} | {extra} | {share} |")  # fmt: skip
    rows = case["runs"]["trl"][0]["held_out"]["rows"]
    scored = ("`valid.csv` rows by label log-likelihood (accuracy)" if name != "medical"
              else "rows of the recipe's split (answer perplexity)")  # fmt: skip
    lines += ["", f"Speed-up (TRL wall time over ft-plugin's, whole process): **{case['speedup_wall']:.2f}x**; "
              f"peak RSS ratio (ft-plugin / TRL): **{case['memory_ratio']:.2f}**; quality on {rows} held-out "
              f"{scored}. {_quality_change(case)[0].upper()}{_quality_change(case)[1:]}"
              f"{INTERVAL_NOTE if case.get('quality_intervals') else ''}.", ""]  # fmt: skip
    return lines


def _quality_change(case: dict) -> str:
    trl, ours = case["runs"]["trl"], case["runs"]["ft-plugin"]
    intervals = case.get("quality_intervals")
    if "accuracy" in trl[0]["held_out"]:
        was, now = _accuracy(trl, "accuracy"), _accuracy(ours, "accuracy")
        text = f"held-out accuracy {was:.3f} → {now:.3f} ({change(intervals, 'accuracy', now - was, 100, ' points')})"
    else:
        was, now = _accuracy(trl, "perplexity"), _accuracy(ours, "perplexity")
        text = f"held-out perplexity {was:.2f} → {now:.2f} ({change(intervals, 'perplexity', now - was)})"
    return text if intervals else f"{text}; {NO_INTERVALS}"


def speed(result: dict, before: dict | None) -> list[str]:
    lines: list[str] = []
    titles = {"user": "Speed, memory and quality at the user's settings (CPU)",
              "builtin": "Speed, memory and quality, builtin recipe as shipped (CPU)",
              "medical": "Speed, memory and quality, medical-lora as shipped: long answers (CPU)"}  # fmt: skip
    for name, case in result["cases"].items():
        lines += speed_case(name, case, result, titles[name])
    if before is not None and "user" in before["cases"]:
        lines += speed_case("user", before["cases"]["user"], before,
                            "Before this change: the user's settings at the previous commit (the recipe then "
                            "resolved to 2 micro-batches per step; packing flattened micro_batch_size bins "
                            "into one row under a block-diagonal mask)")  # fmt: skip
    peaks = result["matmul_peak_gflops"]
    lines += [f"Matmul peak on this machine (best 2048² matmul): fp32 {peaks['fp32']} GFLOP/s, bf16 {peaks['bf16']} "
              "GFLOP/s. Model FLOP/s counts, as MFU does, the model's FLOPs per real (non-padding) token whatever "
              "the implementation executes: LoRA-aware 4·N (forward 2N, input gradient 2N) plus attention over the "
              "token's own row. ft-plugin executes fewer: its LM head scores only the answer positions.", ""]  # fmt: skip
    return lines


def kernels(result: dict) -> list[str]:
    lines = ["### Kernels behind the choices (CPU, bf16, fwd + bwd)", "", *header(result),
             "| row length | SDPA math ms | SDPA flash ms |", "|---:|---:|---:|"]  # fmt: skip
    lines += [
        f"| {r['length']} | {r['math']:.1f} | {r['flash_attention']:.1f} |"
        for r in result["sdpa_by_length"]
    ]
    lines += ["", "| packed rows | tokens | block-diagonal mask ms | sdpa_packed (per row) ms | × |",
              "|---:|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r['rows']} | {r['tokens']} | {r['block_mask_ms']:.1f} | {r['per_row_ms']:.1f} | "
              f"{r['block_mask_ms'] / r['per_row_ms']:.1f} |" for r in result["packed_rows"]]  # fmt: skip
    d = result["dropout"]
    lines += ["", f"LoRA dropout on {d['elements']:,} bf16 elements: `nn.Dropout` {d['torch_dropout_ms']:.2f} ms, "
              f"`SharedInputDropout` {d['shared_input_dropout_ms']:.2f} ms "
              f"({d['torch_dropout_ms'] / d['shared_input_dropout_ms']:.1f}x), before sharing one draw among the "
              "adapters that read the same input.", ""]  # fmt: skip
    return lines


def eval_dtype(result: dict) -> list[str]:
    lines = ["### Evaluation in bfloat16 against float32 (`ft-plugin eval --dtype`)", "", *header(result),
             "| case | float32 s | bfloat16 s | float32 / bfloat16 | float32 | bfloat16 | rows agree |",
             "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for name, case in result["cases"].items():
        metric = "perplexity" if "perplexity" in case["float32"] else "accuracy"
        agree = (f"{100 * case['same_prediction_share']:.1f}% same label" if metric == "accuracy" else
                 f"mean per-token NLL change {case['mean_row_nll_per_token_change']:.4f}, max {case['max_row_nll_per_token_change']:.4f}")  # fmt: skip
        lines.append(f"| {name} | {case['float32']['seconds']:.0f} | {case['bfloat16']['seconds']:.0f} | "
                     f"{case['float32_over_bfloat16_seconds']:.2f}x | {case['float32'][metric]:.4g} | "
                     f"{case['bfloat16'][metric]:.4g} | {agree} |")  # fmt: skip
    return [*lines, ""]


def torch_compile(result: dict) -> list[str]:
    lines = ["### torch.compile (inductor) on a LoRA step", "", *header(result),
             "| compiled | first step s | later steps, mean s | total s |", "|---|---:|---:|---:|"]  # fmt: skip
    names = {
        "eager": "nothing (eager)",
        "mlp": "each decoder MLP",
        "layer": "each whole decoder layer",
    }
    lines += [f"| {names[m['mode']]} | {m['first_step_seconds']:.1f} | {m['later_step_seconds']:.2f} | "
              f"{m['total_seconds']:.0f} |" for m in result["modes"]]  # fmt: skip
    return [*lines, "", f"{result['steps']} steps of `finance-sentiment-lora` as shipped.", ""]


def classification(name: str, title: str, result: dict) -> list[str]:
    lines = [
        f"### {title}",
        "",
        *header(result),
        "| model | accuracy | macro-F1 |",
        "|---|---:|---:|",
    ]
    intervals = result.get("intervals")
    for label, role, key in (("embedded SmolLM2-135M-Instruct, zero-shot", "baseline", "zero_shot"),
                             ("after LoRA fine-tuning", "target", "tuned")):  # fmt: skip
        scores = result[key]
        lines.append(f"| {label} | {scores['accuracy']:.3f}{interval(intervals, role, 'accuracy')} | "
                     f"{scores['macro_f1']:.3f}{interval(intervals, role, 'macro_f1')} |")  # fmt: skip
    lines.append(f"| change (points) | {change(intervals, 'accuracy', result['tuned']['accuracy'] - result['zero_shot']['accuracy'], 100)} | "
                 f"{change(intervals, 'macro_f1', result['tuned']['macro_f1'] - result['zero_shot']['macro_f1'], 100)} |")  # fmt: skip
    lines += ["", "In brackets: paired bootstrap 95% intervals (1,000 resamples of the evaluated rows, the "
              "same rows for both models)." if intervals else f"Intervals: {NO_INTERVALS}."]  # fmt: skip
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


def profile(
    result: dict,
    title: str = "Where a training step's time goes (torch.profiler, ft-plugin defaults)",
) -> list[str]:
    lines = [f"### {title}", "", *header(result),
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


def axolotl_example(result: dict) -> list[str]:
    """Axolotl's own example config, run as written but for its base model and data path."""
    intervals, base, tuned, train = (
        result.get("intervals"),
        result["base"],
        result["tuned"],
        result["train"],
    )
    lines = [f"### Axolotl's `{result['config'].removeprefix('tests/axolotl_examples/')}`, "
             "run end to end on the embedded model", "", *header(result),
             "Changed: " + "; ".join(f"`{c}`" for c in result["changed"]) + ". Everything else as "
             "Axolotl's authors wrote it.", "",
             "| model | held-out perplexity | ROUGE-L |", "|---|---:|---:|"]  # fmt: skip
    for label, role, scores in (("embedded SmolLM2-135M-Instruct (adapter off)", "baseline", base),
                                ("after the config's LoRA run", "target", tuned)):  # fmt: skip
        lines.append(f"| {label} | {scores['perplexity']:.2f}{interval(intervals, role, 'perplexity', 2)} | "
                     f"{scores['rougeL']:.3f}{interval(intervals, role, 'rougeL')} |")  # fmt: skip
    lines += ["", f"{result['data_rows']} PubMedQA rows as `alpaca` (question → conclusion); "
              f"{train['train_rows']} trained, {train['eval_rows']} held out by the config's `val_set_size`; "
              f"perplexity and ROUGE-L (greedy answers) on a seeded sample of {result['eval_rows']} held-out "
              "rows, in brackets paired bootstrap 95% intervals. Training: "
              f"{train['steps']} steps ({train['packing']}), {train['train_tokens']} tokens, "
              f"{result['train_wall_seconds'] / 60:.1f} min wall clock for `ft-plugin train` "
              f"({train['tokens_per_second']:.0f} tokens/s), peak {train['peak_memory_mb']:.0f} MB; "
              f"evaluation {result['eval_wall_seconds'] / 60:.1f} min.", ""]  # fmt: skip
    if conditions := result.get("conditions"):
        lines += [f"Conditions: {conditions}.", ""]
    return lines


def gpu(lines_jsonl: list[dict]) -> list[str]:
    lines = ["### GPU (benchmarks/gpu.sh)", "", "| shape | method | side | tokens/s | rows / step | peak MB | MFU | attention |",
             "|---|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in lines_jsonl:
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['method']} | {r['side']} | {r['error']} | | | | |")
            continue
        lines.append(f"| {r['shape']} | {r['method']} | {r['side']} | {r['tokens_per_second']:.0f} | "
                     f"{r.get('rows_per_step', 8):g} | {r['peak_memory_mb']:.0f} | {r['mfu']:.1%} | "
                     f"{r.get('attention', 'sdpa (padded)')} |")  # fmt: skip
    return [*lines, ""]


def _speed_summary(case: dict) -> str:
    trl, ours = case["runs"]["trl"], case["runs"]["ft-plugin"]
    quality = _quality_change(case)
    return (f"**{case['speedup_wall']:.2f}x** ({_side(trl, 'wall_seconds_process'):.0f} s → "
            f"{_side(ours, 'wall_seconds_process'):.0f} s), peak RSS **{case['memory_ratio']:.2f}x** "
            f"({_side(trl, 'peak_rss_mb'):.0f} → {_side(ours, 'peak_rss_mb'):.0f} MB), {quality}")  # fmt: skip


def summary() -> list[str]:
    """The summary table, every number read from the results files."""
    rows = []
    if claims := load("claims"):
        verdicts = [c["verdict"] for c in claims["claims"]]
        counts = ", ".join(
            f"{verdicts.count(v)} {v}" for v in ("holds", "holds partly", "does not hold here")
        )
        rows.append(("the field's claims on real medical data (`claims.py`)",
                     f"{len(verdicts)} of 9 measured: {counts}"))  # fmt: skip
    if dtype_result := load("eval_dtype"):
        ratios = ", ".join(f"{name} {case['float32_over_bfloat16_seconds']:.2f}x"
                           for name, case in dtype_result["cases"].items())  # fmt: skip
        rows.append(("evaluation in bfloat16, float32 time over bfloat16 time", ratios))
    if speed_result := load("speed"):
        cases = speed_result["cases"]
        if "user" in cases:
            rows.append(("user's settings (issue #13): ≥2x plain TRL's wall time, peak RSS no higher, "
                         "accuracy within 3 points", _speed_summary(cases["user"])))  # fmt: skip
        if "builtin" in cases:
            rows.append(("builtin recipe as shipped: ≥2x", _speed_summary(cases["builtin"])))
        if "medical" in cases:
            rows.append(
                ("medical-lora as shipped (long answers)", _speed_summary(cases["medical"]))
            )
        before = load("speed_before")
        if (
            before
            and "user" in cases
            and "bf16_peak_share" in cases["user"]["runs"]["ft-plugin"][0]
        ):
            was = _side(before["cases"]["user"]["runs"]["ft-plugin"], "bf16_peak_share")
            now = _side(cases["user"]["runs"]["ft-plugin"], "bf16_peak_share")
            rows.append(("model FLOP/s as a share of the bf16 matmul peak (user's settings)",
                         f"{was:.1%} before → {now:.1%} after"))  # fmt: skip
    if dpo := load("dpo_speed"):
        rows.append(("DPO (issue 32): ≥1.5x plain TRL DPOTrainer's wall time at no more peak "
                     "memory, held-out reward accuracy equal within noise", dpo_summary(dpo)))  # fmt: skip
    if quality := load("dpo_quality"):
        rows.append(("DPO on real data (issue 32): from an SFT adapter, pairs from its own "
                     "answers on cmedical", dpo_quality_summary(quality)))  # fmt: skip
    if deploy := load("deploy"):
        rows.append(("deployment (issue 33): the tuned embedded model served as the adapter, "
                     "merged, GGUF f16 / q8_0 / q4_k_m; fastest side", deploy_summary(deploy)))  # fmt: skip
    if tfns := load("tfns"):
        rows.append(("TFNS: tuned embedded model >80% accuracy, CPU run <30 min",
                     f"{tfns['tuned']['accuracy']:.3f} accuracy ({tfns['tuned']['macro_f1']:.3f} macro-F1) after "
                     f"{tfns['train_wall_seconds'] / 60:.1f} min; zero-shot {tfns['zero_shot']['accuracy']:.3f}"))  # fmt: skip
    if pubmed := load("pubmedqa"):
        rows.append(
            (
                "PubMedQA 500 test PMIDs, zero-shot vs tuned",
                f"{pubmed['zero_shot']['accuracy']:.3f} vs {pubmed['tuned']['accuracy']:.3f} accuracy",
            )
        )
    if legal := load("legalbench"):
        mean = legal["mean_over_tasks"]
        rows.append(
            (
                "LegalBench balanced accuracy on unseen contract tasks",
                f"{mean['zero_shot']:.3f} zero-shot vs {mean['tuned']:.3f} tuned",
            )
        )
    gpu = RESULTS / "gpu.jsonl"
    rows.append(("GPU (H200) tokens/s, memory, MFU", "see the GPU table" if gpu.is_file()
                 else "not run: no GPU machine was lent to this task"))  # fmt: skip
    return ["| goal | result (benchmarks/results/; machine and commit in each table below) |", "|---|---|",
            *(f"| {goal} | {result} |" for goal, result in rows), ""]  # fmt: skip


def main() -> None:
    out: list[str] = []
    if result := load("claims"):
        out += claims_section(result, load("claims_quick"))
    if result := load("speed"):
        out += speed(result, load("speed_before"))
    if result := load("kernels"):
        out += kernels(result)
    if result := load("profile"):
        out += profile(result)
    if result := load("profile_before"):
        out += profile(result, "The same profile before this change (commit of the run below)")
    if result := load("torch_compile"):
        out += torch_compile(result)
    if result := load("eval_dtype"):
        out += eval_dtype(result)
    if result := load("label_scoring"):
        out += label_scoring(result)
    if result := load("tfns"):
        out += classification("tfns", "TFNS financial news sentiment (valid.csv)", result)
    if result := load("pubmedqa"):
        out += classification("pubmedqa", "PubMedQA PQA-L (500 test PMIDs)", result)
    for name in ("legalbench", "legalbench_folds"):
        if result := load(name):
            out += legalbench(result)
    if result := load("axolotl_example"):
        out += axolotl_example(result)
    if result := load("dpo_speed"):
        out += dpo_section(result, header(result))
    if result := load("dpo_quality"):
        out += dpo_quality_section(result, header(result))
    if result := load("deploy"):
        out += deploy_section(result, header(result))
    if (RESULTS / "gpu.jsonl").is_file():
        out += gpu(
            [
                json.loads(line)
                for line in (RESULTS / "gpu.jsonl").read_text().splitlines()
                if line.strip()
            ]
        )
    for path in sorted(RESULTS.glob("continual_ewc*.json")):
        out += continual(json.loads(path.read_text()))
    tables = "\n".join(out)
    if "--write" not in sys.argv:
        print("\n".join(summary()))
        print(tables)
        return
    head = (REPO / "benchmarks" / "BENCHMARKS.head.md").read_text(encoding="utf-8")
    target = REPO / "BENCHMARKS.md"
    staging = target.with_suffix(".md.tmp")
    summary_table = "\n".join(summary())
    staging.write_text(f"{head.rstrip()}\n\n## Summary\n\n{summary_table.rstrip()}\n\n## Results\n\n"
                       f"{tables.rstrip()}\n", encoding="utf-8")  # fmt: skip
    staging.replace(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
