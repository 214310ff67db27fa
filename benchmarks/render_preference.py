"""The preference-tuning section of BENCHMARKS.md, every number read from
results/dpo_speed.json (written by dpo_speed.py)."""

from __future__ import annotations

import statistics
from typing import Any

SIDES = {"trl": "plain TRL (documented DPOTrainer + LoRA)", "ft-plugin": "ft-plugin (`rl: dpo`)"}
RESAMPLES, SEED = 2000, 0


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def ratios(result: dict) -> dict[str, float]:
    """TRL's wall time over ours (higher: we are faster) and our peak RSS over TRL's."""
    trl, ours = result["sides"]["trl"], result["sides"]["ft-plugin"]
    return {"speedup_wall": _median(trl, "wall_seconds_process") / _median(ours, "wall_seconds_process"),
            "memory_ratio": _median(ours, "peak_rss_mb") / _median(trl, "peak_rss_mb")}  # fmt: skip


def accuracy_change(result: dict) -> dict[str, Any]:
    """Held-out reward accuracy of each side (first repetition) and the paired-bootstrap
    95% interval of ours minus TRL's, over the same pairs."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from ft_plugin.evaluate.intervals import RowStatistic, paired_bootstrap

    rows = {side: runs[0]["held_out"]["per_row"] for side, runs in result["sides"].items()}
    stats = {side: {m: RowStatistic.mean(rows[side][m]) for m in ("reward_accuracy", "reward_margin")}
             for side in rows}  # fmt: skip
    intervals = paired_bootstrap(stats["ft-plugin"], stats["trl"], resamples=RESAMPLES, seed=SEED)
    return {"values": {s: {m: v.value() for m, v in st.items()} for s, st in stats.items()},
            "delta": intervals["delta"]}  # fmt: skip


def dpo_summary(result: dict) -> str:
    r, change = ratios(result), accuracy_change(result)
    trl, ours = result["sides"]["trl"], result["sides"]["ft-plugin"]
    values, (low, high) = change["values"], change["delta"]["reward_accuracy"]
    return (f"**{r['speedup_wall']:.2f}x** ({_median(trl, 'wall_seconds_process'):.0f} s → "
            f"{_median(ours, 'wall_seconds_process'):.0f} s), peak RSS **{r['memory_ratio']:.2f}x** "
            f"({_median(trl, 'peak_rss_mb'):.0f} → {_median(ours, 'peak_rss_mb'):.0f} MB), held-out "
            f"reward accuracy {values['trl']['reward_accuracy']:.3f} → "
            f"{values['ft-plugin']['reward_accuracy']:.3f} (change [{low:+.3f}, {high:+.3f}])")  # fmt: skip


def dpo_section(result: dict, header: list[str]) -> list[str]:
    s = result["settings"]
    change = accuracy_change(result)
    lines = ["### DPO: plain TRL vs `rl: dpo`, same pairs and settings", "", *header,
             "| side | wall (process) | training | steps | peak RSS | held-out reward accuracy | reward margin | pair accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for side, runs in result["sides"].items():
        held = runs[0]["held_out"]
        lines.append(f"| {SIDES[side]} | {_median(runs, 'wall_seconds_process'):.0f} s | "
                     f"{_median(runs, 'train_seconds'):.0f} s | {runs[0]['steps']} | "
                     f"{_median(runs, 'peak_rss_mb'):.0f} MB | {held['reward_accuracy']:.3f} | "
                     f"{held['reward_margin']:.3f} | {held['pair_accuracy']:.3f} |")  # fmt: skip
    low, high = change["delta"]["reward_accuracy"]
    mlow, mhigh = change["delta"]["reward_margin"]
    lines += ["", f"{s['pairs']} training pairs, {s['held_out']} held out, from "
              "`../shared/data/cmedical/internal_medicine.csv` (the doctor's answer chosen, the "
              "answer to another question rejected); LoRA r={lora_r}, alpha {lora_alpha}, dropout "
              "{lora_dropout}, every linear layer; beta {beta}; learning rate {learning_rate}; "
              "micro-batch {micro_batch_size}; {num_epochs} epoch; max length {sequence_len}; "
              "{reps} run per side, back to back. Wall time is the whole process; rewards are "
              "scored against the base model with ft-plugin's pair scorer on both adapters. "
              f"Change in held-out reward accuracy, ours minus TRL's, paired bootstrap 95% "
              f"interval: [{low:+.3f}, {high:+.3f}]; in reward margin: [{mlow:+.3f}, {mhigh:+.3f}]."
              .format(**s), ""]  # fmt: skip
    return lines


QUALITY_ORDER = ("reward_accuracy", "reward_margin", "pair_accuracy", "answer_perplexity",
                 "rougeL", "chrf")  # fmt: skip


def _change(report: dict, metric: str, digits: int = 2) -> str:
    low, high = report["intervals"]["delta"][metric]
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def dpo_quality_summary(result: dict) -> str:
    report = result["eval"]
    base, tuned = report["models"]["baseline"], report["models"]["target"]
    return (f"held-out reward accuracy {tuned['reward_accuracy']:.3f}, margin "
            f"{tuned['reward_margin']:+.2f} {_change(report, 'reward_margin')} against the SFT "
            f"adapter; greedy answers not distinguishable: ROUGE-L {base['rougeL']:.2f} → "
            f"{tuned['rougeL']:.2f} {_change(report, 'rougeL')}")  # fmt: skip


def dpo_quality_section(result: dict, header: list[str]) -> list[str]:
    """The real-data row: DPO from an SFT adapter on pairs from the SFT model's own answers."""
    s, report = result["settings"], result["eval"]
    base, tuned = report["models"]["baseline"], report["models"]["target"]
    deltas, seen = report["intervals"]["delta"], report.get("distinguishable", {})
    lines = ["### DPO on real data: cmedical internal medicine, pairs from the SFT model's own answers",
             "", *header, *([result["runs"], ""] if result.get("runs") else []),
             "| metric (held-out) | SFT adapter | DPO from it | change, 95% interval | |",
             "|---|---:|---:|---|---|"]  # fmt: skip
    for metric in (m for m in QUALITY_ORDER if m in tuned):
        low, high = deltas[metric]
        verdict = "distinguishable" if seen.get(metric) else "within noise"
        lines.append(f"| {metric} | {base[metric]:.4g} | {tuned[metric]:.4g} | "
                     f"[{low:+.4g}, {high:+.4g}] | {verdict} |")  # fmt: skip
    pairs = result["pairs"]
    lines += ["", f"Rows of `../shared/data/cmedical/internal_medicine.csv` (GB18030, a question's "
              f"duplicates dropped), split once with seed 0: {s['sft_rows']} for SFT "
              f"(`medical-lora`, {s['sft_steps']} steps at sequence_len 640), {s['pair_rows']} for "
              f"training pairs and {s['held_out']} held out, which no step trains on. Pairs: the "
              "doctor's answer chosen, the SFT model's greedy answer "
              f"({s['max_new_tokens']} tokens at most) rejected; {_pairs_line(pairs['pairs'])} for "
              f"training, {_pairs_line(pairs['held_out'])} held out. DPO: LoRA r16 from the SFT "
              "adapter, beta 0.1, lr 5e-5, one epoch, micro-batch 4. `ft-plugin eval` of the DPO "
              "run against the SFT adapter it started from, paired bootstrap over the held-out "
              "rows. The reward metrics score each model against the SFT adapter, so the SFT "
              "column's are 0 by construction.", "", *_quality_reading(result)]  # fmt: skip
    return lines


def _quality_reading(result: dict) -> list[str]:
    """What the numbers say, each number read from the results."""
    report, dpo = result["eval"], result["dpo"]
    base, tuned = report["models"]["baseline"], report["models"]["target"]
    train = dpo["rewards"]["train"]
    return [f"What it says: DPO learned to tell the doctors' answers from its own. After "
            f"{dpo['steps']} steps (train loss {dpo['train_loss']:.3f}, training reward accuracy "
            f"{train['accuracy']:.3f}) it ranks every held-out pair the right way against the SFT "
            f"adapter (reward accuracy {tuned['reward_accuracy']:.3f}, margin "
            f"{tuned['reward_margin']:.2f} nats over a whole answer, "
            f"{_change(report, 'reward_margin')}). Its greedy answers did not measurably move: "
            f"the intervals of ROUGE-L {_change(report, 'rougeL')} and chrF "
            f"{_change(report, 'chrf')} hold 0, and so does that of the doctors' answers' "
            f"perplexity ({base['answer_perplexity']:.3f} → {tuned['answer_perplexity']:.3f}, "
            f"{_change(report, 'answer_perplexity', 3)}). Pair accuracy stays "
            f"{tuned['pair_accuracy']:.3f}: under both models the model's own greedy answer is "
            "still likelier than the doctor's for every held-out question, so the shift DPO made "
            "relative to its start is too small per token to change what greedy decoding "
            "picks. A likely reason, not measured: rejected answers that are the model's own "
            "text are easy to tell apart, so the loss falls fast and teaches little about "
            "content. At this scale (a 135M model, "
            f"{result['pairs']['pairs']['pairs_out']} pairs, one epoch) DPO does not help the "
            "answers. More pairs, more epochs or a larger beta are the next measurements, not "
            "made here.", ""]  # fmt: skip


def _pairs_line(report: dict) -> str:
    dropped = ", ".join(f"{v} {k}" for k, v in report.get("dropped", {}).items())
    return f"{report['pairs_out']} pairs from {report['rows_in']} rows" + (
        f" ({dropped} dropped)" if dropped else ""
    )
