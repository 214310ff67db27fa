"""The claims section of BENCHMARKS.md, every number read from results/claims.json."""

from __future__ import annotations

from typing import Any

from claims import MODES

ROWS_PER_STEP = MODES["full"].micro_batch_size

TITLES = {
    1: "LoRA trains 1–10% of the parameters at close to full fine-tuning quality; full fine-tuning is best but costs most",
    2: "freezing the lower layers and training the top ones cuts training compute by 30–50%",
    3: "adapter layers keep 95% of full fine-tuning quality with 0.3% of the parameters trainable",
    4: "data augmentation raises medical QA accuracy by 12%",
    5: "progressive fine-tuning (general medicine, then one department) beats the department's data alone by 18%",
    6: "one adapter per task lifts a new task by 27% while the old task keeps its performance",
    7: "elastic weight consolidation prevents forgetting when new data arrives",
    8: "training on 512-token chunks handles documents of 2,048 tokens and more",
    9: "stopping when validation perplexity has not improved for 3 evaluations avoids overfitting",
}


# Why a claim does not hold in full here: written after reading each result, keyed by the
# verdict it explains (a rerun with another verdict drops the sentence); every number in it
# is read from the claim's entry, so a rerun cannot leave a stale one behind.


def why_1(m: dict, runs: dict) -> str:
    return (f"At {runs['lora']['steps']} steps of {ROWS_PER_STEP} rows each method runs its builtin recipe's learning "
            f"rate (LoRA 2e-4, full 2e-5) untuned; full fine-tuning moves all {runs['full']['trainable_params'] / 1e6:.0f}M "
            f"weights and is clearly better, while LoRA's rank-16 update reaches {100 * m['lora_share_of_full_gain']:.0f}% "
            f"of its gain. On this CPU full fine-tuning costs only {m['full_over_lora']['wall_seconds']:.2f}x the time, "
            "because LoRA's backward pass still runs through every frozen layer; its memory cost "
            f"({m['full_over_lora']['peak_memory_mb']:.2f}x) is the optimizer state. A per-method learning-rate sweep "
            "was not run.")  # fmt: skip


def why_5(m: dict, runs: dict) -> str:
    parts = []
    for name, r in m["per_specialty"].items():
        longer = r["runs"]["direct (2N steps)"]
        seen, rows = longer["steps"] * ROWS_PER_STEP, longer["train_rows"]
        wins = r["ppl_reduction_pct"] > 0 and r["progressive_minus_direct_ppl"]["beyond_noise"]
        result = (f"progressive training is {r['ppl_reduction_pct']:.1f}% better than {2 * m['steps']} steps on the "
                  "department alone" if wins else
                  f"the department's own rows win (progressive training's perplexity {-r['ppl_reduction_pct']:+.1f}%)")  # fmt: skip
        if seen < rows:
            parts.append(f"With all {rows} of its rows ({r.get('specialty', name)}), {result}: {longer['steps']} steps see only {seen} "
                         "of them, so every general-medicine step displaces a department row.")  # fmt: skip
        else:
            parts.append(f"With {rows} {r.get('specialty', name)} rows ({longer['steps']} steps take {seen / rows:.0f} passes over "
                         f"them), {result}.")  # fmt: skip
        if "ppl_reduction_vs_same_steps_direct_pct" in r:
            parts.append(f"Against the department alone at the same {m['steps']} steps progressive training is "
                         f"{r['ppl_reduction_vs_same_steps_direct_pct']:.0f}% better, but it has trained twice as long.")  # fmt: skip
    designs = list(m["per_specialty"].values())
    if len(designs) > 1 and all(r["ppl_reduction_pct"] <= 0 for r in designs):
        scarce = min(designs, key=lambda r: r["runs"]["direct (2N steps)"]["train_rows"])
        parts.append("So the general stage does not pay here even once the department's rows run out: "
                     f"{scarce['runs']['direct (2N steps)']['train_rows']} department rows seen again and again "
                     f"reach {scarce['direct_2x']['perplexity']:.2f} on their own, and general-medicine steps "
                     "instead of repeats do worse, so the shortfall is not only that general steps displace department "
                     f"rows. Our reading, not measured: at this scale {m['steps']} steps mostly teach the corpus's answer "
                     "style, which the department's own rows teach as well as general medicine does.")  # fmt: skip
    return " ".join(parts)


def why_6(m: dict, runs: dict) -> str:
    seq = m["sequential_old_change"]
    shared = (
        f"The two departments do not interfere at this scale: one adapter trained on both in sequence is "
        f"better on both (old task {seq['value']:+.2f} ppl), so isolation buys nothing here beyond the guarantee."
        if seq["value"] < 0 and seq["beyond_noise"]
        else f"One adapter trained on both in sequence changes the old task by {ci(seq)} ppl; isolation "
        "avoids that change."
    )
    return (f"The router sends {100 * m['router_accuracy']['old']:.1f}% of old-task prompts to the old adapter, so "
            f"the old task keeps its perplexity ({ci(m['old_change'])}); the new task's own adapter lowers its "
            f"perplexity by {m['new_lift_pct']:.0f}%, not 27%, after {runs['cardiology']['steps']} steps. {shared}")  # fmt: skip


def _lambda(run_name: str) -> str:
    """``EWC λ 2e+06`` (a run's name in claims.json) as ``λ 2e6``."""
    value = float(run_name.rsplit(" ", 1)[-1])
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"λ {mantissa}e{int(exponent)}"


def why_7(m: dict, runs: dict) -> str:
    plain, best = m["results"]["no protection"], m["results"][m["best"]]
    others = [
        f"{_lambda(name)} cuts it by {r['forgetting_reduced_pct']:.0f}% at {100 * r['share_of_new_gain']:.0f}% of the gain"
        for name, r in m["results"].items()
        if name not in ("no protection", m["best"]) and r["forgetting_reduced_pct"] is not None
    ]
    left = (
        "The rise that is left is small but still beyond noise, so by the fixed rule EWC nearly prevents "
        "forgetting here rather than preventing it."
        if best["forgetting"]["beyond_noise"]
        else "The rise that is left is within noise, but the new task keeps less than 80% of its gain."
    )
    return (f"EWC at {_lambda(m['best'])} cuts the forgetting by {best['forgetting_reduced_pct']:.0f}%: "
            f"general-medicine perplexity rises by {best['forgetting']['value']:.3f} instead of "
            f"{plain['forgetting']['value']:.2f}, at {100 * best['share_of_new_gain']:.0f}% of the new task's accuracy "
            f"gain{' (' + '; '.join(others) + ')' if others else ''}. {left}")  # fmt: skip


def why_8(m: dict, runs: dict) -> str:
    seen = runs["512-token chunks"]["train_tokens"] / runs["2048-token windows"]["train_tokens"]
    return (f"A caveat on the reference: in the same {runs['512-token chunks']['steps']} steps the chunked run saw "
            f"{seen:.2f}x the tokens of the 2,048-token run (a document's last window is short), which favours the "
            "chunks. What the claim says holds either way: training at 512 tokens learns from documents 4 to 8 times "
            "longer and lowers their whole-document perplexity beyond noise, at "
            f"{m['peak_memory_ratio_chunks_over_windows']:.2f}x the long run's peak memory.")  # fmt: skip


def why_4(m: dict, runs: dict) -> str:
    predicted, yes = m["predicted_labels"], m["predicted_labels"].get("yes", 0)
    return (f"Nothing moves here: the tuned runs (plain and augmented, {len(m['seeds'])} seeds each) answer "
            f'"yes" to {yes} of their {sum(predicted.values())} questions, so their accuracy is the share of "yes" '
            f"among the test questions; the base model scores {m['accuracy']['base']:.3f}. Drawing yes/no/maybe from "
            f"an abstract is beyond the 135M model after {runs['plain, seed 0']['steps']} steps (as in the PubMedQA "
            "table below), and augmentation cannot lift a model that does not learn the task; the second seed "
            "repeats the first.")  # fmt: skip


WHY = {(1, "holds partly"): why_1, (4, "does not hold here"): why_4, (5, "does not hold here"): why_5, (5, "holds partly"): why_5,
       (6, "holds partly"): why_6, (7, "holds partly"): why_7, (8, "holds"): why_8}  # fmt: skip


def ci(d: dict[str, Any], digits: int = 2) -> str:
    """``+x.xx [lo, hi]`` of a paired difference, marked when it is within noise."""
    low, high = d["interval"]
    noise = "" if d["beyond_noise"] else ", within noise"
    return f"{d['value']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}{noise}]"


def _q(q: dict[str, Any]) -> str:
    text = f"ppl {q['perplexity']:.2f}"
    if "rougeL" in q:
        text += f", BLEU-4 {q['bleu']:.2f}, ROUGE-L {q['rougeL']:.2f}"
    return text


def measured_1(m: dict) -> str:
    return (f"general-medicine held-out ({m['eval_rows']} rows): base {_q(m['base'])}; LoRA {_q(m['lora'])}; "
            f"full {_q(m['full'])}. LoRA − full ppl {ci(m['lora_minus_full_ppl'])}; LoRA reaches "
            f"{100 * m['lora_share_of_full_gain']:.0f}% of full's log-perplexity gain; full costs "
            f"{m['full_over_lora']['wall_seconds']:.2f}x the time and {m['full_over_lora']['peak_memory_mb']:.2f}x the memory")  # fmt: skip


def measured_2(m: dict) -> str:
    return (f"{m['trained_layers']}: training time −{m['compute_cut_pct']:.1f}% and peak memory "
            f"−{m['memory_cut_pct']:.1f}% against full fine-tuning; held-out ppl {m['freeze']['perplexity']:.2f} vs "
            f"{m['full']['perplexity']:.2f} (freeze − full {ci(m['freeze_minus_full_ppl'])})")  # fmt: skip


def measured_3(m: dict) -> str:
    return (f"bottleneck size {m['bottleneck_size']}: ppl {m['adapter']['perplexity']:.2f} vs full "
            f"{m['full']['perplexity']:.2f} (base {m['base']['perplexity']:.2f}); "
            f"{100 * m['adapter_share_of_full_gain']:.0f}% of full's log-perplexity gain; adapter − full "
            f"{ci(m['adapter_minus_full_ppl'])}")  # fmt: skip


def measured_4(m: dict) -> str:
    a, f = m["accuracy"], m["macro_f1"]
    seeds = f"mean of seeds {', '.join(map(str, m['seeds']))}" if "seeds" in m else "seed 0"
    return (f"PubMedQA ({m['test_rows']} test rows; {m['train_rows']} training questions): accuracy base "
            f"{a['base']:.3f}, plain {a['plain']:.3f}, augmented {a['augmented']:.3f} ({seeds}; "
            f"{m['relative_gain_pct']:+.1f}% relative; augmented − plain {ci(m['augmented_minus_plain_accuracy'], 3)}); "
            f"macro-F1 {f['plain']:.3f} → {f['augmented']:.3f}; augmentation added "
            f"{_added(m['augment_report'])}")  # fmt: skip


def _added(report: dict | None) -> str:
    if not report:
        return "no rows"
    return (
        ", ".join(f"{n} {kind} rows" for kind, n in report.get("augmented", {}).items())
        or "no rows"
    )


def measured_5(m: dict) -> str:
    parts, n = [], m["steps"]
    for name, r in m["per_specialty"].items():
        rows = (
            f"{r['department_rows']} training rows"
            if "department_rows" in r
            else "all its training rows"
        )
        alone = (
            f"{r['direct']['perplexity']:.2f} ({n} steps) and " if "direct" in r else ""
        ) + f"{r['direct_2x']['perplexity']:.2f} ({2 * n} steps)"
        same = (
            f", {-r['ppl_reduction_vs_same_steps_direct_pct']:+.1f}% against {n} department steps"
            if "ppl_reduction_vs_same_steps_direct_pct" in r
            else ""
        )
        parts.append(f"{r.get('specialty', name)} held-out, {rows} ({m['verdicts'][name]}): base ppl {r['base']['perplexity']:.2f}; "
                     f"department alone {alone}; progressive ({n} general + {n} department steps) "
                     f"{r['progressive']['perplexity']:.2f}: {-r['ppl_reduction_pct']:+.1f}% against the same {2 * n} "
                     f"steps on the department ({ci(r['progressive_minus_direct_ppl'])}){same}")  # fmt: skip
    return "; ".join(parts)


def measured_6(m: dict) -> str:
    r = m["router_accuracy"]
    return (f"new task ({m['new_task']}) ppl {m['new_ppl_before']:.2f} with the old adapter → "
            f"{m['new_ppl_routed']:.2f} routed (perplexity −{m['new_lift_pct']:.1f}%; {ci(m['new_change'])}); old task {m['old_ppl_before']:.2f} → "
            f"{m['old_ppl_routed']:.2f} ({ci(m['old_change'])}); one adapter trained on in sequence: old task "
            f"{m['sequential_old_ppl']:.2f} ({ci(m['sequential_old_change'])}); router right on "
            f"{100 * r['old']:.1f}% / {100 * r['new']:.1f}% of old / new prompts")  # fmt: skip


def measured_7(m: dict) -> str:
    parts = []
    for name, r in m["results"].items():
        extra = (
            ""
            if name == "no protection"
            else (
                f", forgetting {'reduced ' + format(r['forgetting_reduced_pct'], '.0f') + '%' if r['forgetting_reduced_pct'] is not None else 'n/a'}"
            )
        )
        parts.append(
            f"{name}: {r['old_ppl']:.2f} ({ci(r['forgetting'])}), TFNS accuracy {r['new_accuracy']:.3f}{extra}"
        )
    return (f"general-medicine ppl {m['old_ppl_before']:.2f} (TFNS accuracy {m['new_accuracy_before']:.3f}) before "
            f"{m['new_steps']} steps of TFNS headlines; after: " + "; ".join(parts))  # fmt: skip


def measured_8(m: dict, runs: dict) -> str:
    d, p = m["documents"], m["ppl"]
    seen = {k: runs[k]["train_tokens"] for k in ("512-token chunks", "2048-token windows")}
    return (f"{d['documents']} PubMedQA documents of {d['min_tokens']:,}–{d['max_tokens']:,} tokens (median "
            f"{d['median_tokens']:,}); {m['test_documents']} documents of held-out topics scored with a 2,048-token "
            f"window: base {p['base']:.2f}, 512-token chunks {p['512-token chunks']:.2f}, 2,048-token windows "
            f"{p['2048-token windows']:.2f}; chunks reach {100 * m['chunks_share_of_window_gain']:.0f}% of the "
            f"long windows' gain at {m['peak_memory_ratio_chunks_over_windows']:.2f}x their peak memory "
            f"(chunks − windows {ci(m['chunks_minus_windows_ppl'])}); in the same steps the chunks trained on "
            f"{seen['512-token chunks']:,} tokens, the windows on {seen['2048-token windows']:,} (a document's "
            "last window is short)")  # fmt: skip


def measured_9(m: dict) -> str:
    best = m["best_validation"]
    return (f"without early stopping the validation loss bottoms at step {best['step']} ({best['eval_loss']:.3f}) "
            f"and ends at {m['validation_curve_without'][-1]['eval_loss']:.3f} (step {m['max_steps']}); patience 3 "
            f"stops at step {m['stopped_at_step']}; cardiology test ppl {m['test_ppl_without']:.2f} → "
            f"{m['test_ppl_with']:.2f} ({ci(m['with_minus_without_ppl'])})")  # fmt: skip


MEASURED = {1: measured_1, 2: measured_2, 3: measured_3, 4: measured_4, 5: measured_5,
            6: measured_6, 7: measured_7, 8: measured_8, 9: measured_9}  # fmt: skip


def _earlier(number: int, earlier: dict) -> str:
    """A replaced design's numbers, kept beside the ones that replaced them."""
    measured = MEASURED[number]
    text = (
        measured(earlier["measured"], earlier["runs"])
        if number == 8
        else measured(earlier["measured"])
    )
    return (f"<br>*Earlier design* ({earlier.get('design', 'first measurement')}, commit "
            f"{earlier['commit']}): {text}; **{earlier['verdict']}**")  # fmt: skip


def _runs_table(claims: list[dict]) -> list[str]:
    lines = [
        "| claim | run | trainable | steps | training time | peak memory |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for c in claims:
        for name, r in _flat_runs(c):
            lines.append(f"| {c['claim']} | {name} | {r['trainable_share_pct']:.3f}% | {r['steps']} | "
                         f"{r['wall_seconds']:.0f} s | {r['peak_memory_mb']:,.0f} MB |")  # fmt: skip
    return lines


def _flat_runs(claim: dict) -> list[tuple[str, dict]]:
    runs = list(claim.get("runs", {}).items())
    for name, r in claim["measured"].get("per_specialty", {}).items():
        runs += [(f"{name}: {k}", v) for k, v in r["runs"].items()]
    return runs


def claims_section(result: dict, quick: dict | None = None) -> list[str]:
    m = result["machine"]
    claims = result["claims"]
    lines = ["### The field's claims, measured (`benchmarks/claims.py`)", "",
             f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}; {m['date']}. Embedded "
             "SmolLM2-135M-Instruct throughout; each row's commit and mode are in claims.json.", "",
             "| # | claim | what we measured | verdict | command |", "|---|---|---|---|---|"]  # fmt: skip
    for c in claims:
        measured = MEASURED[c["claim"]]
        text = measured(c["measured"], c["runs"]) if c["claim"] == 8 else measured(c["measured"])
        text = (f"{c['design']}: " if c.get("design") else "") + text
        text += "".join(_earlier(c["claim"], e) for e in c.get("earlier", []))
        lines.append(f"| {c['claim']} | {TITLES[c['claim']]} | {text} | "
                     f"**{c['verdict']}** | `{c['command']}` |")  # fmt: skip
    lines += [
        "",
        "In brackets: paired bootstrap 95% intervals (1,000 resamples of the same held-out rows).",
        "",
    ]
    whys = [
        (c["claim"], WHY[c["claim"], c["verdict"]](c["measured"], c.get("runs", {})))
        for c in claims
        if (c["claim"], c["verdict"]) in WHY
    ]
    if whys:
        lines += ["Why, where a claim does not hold in full:", ""]
        lines += [f"- **{number}.** {text}" for number, text in whys]
        lines.append("")
    if ref := next((c.get("reference") for c in claims if c.get("reference")), None):
        lines += _reference(ref)
    return [*lines, "Every run behind the table (the same rows and steps wherever two are compared):", "",
            *_runs_table(claims), "",
            *_timing(result.get("invocations", []), (quick or {}).get("invocations", []))]  # fmt: skip


def _timing(invocations: list[dict], quick: list[dict]) -> list[str]:
    """One line per timed invocation of the driver: which claims, from an empty cache or
    reusing earlier runs, and how long each claim took within it."""
    if not invocations and not quick:
        return []
    lines = ["Timed invocations of `benchmarks/claims.py` (a claim's time includes the runs it "
             "trained for later claims, and is short where it reused earlier ones):", ""]  # fmt: skip
    for i in [*invocations, *({**q, "quick": True} for q in quick)]:
        start = "from an empty cache" if i["cache_empty_at_start"] else "reusing cached runs"
        parts = ", ".join(f"{n}: {s / 60:.0f} min" for n, s in i["per_claim_seconds"].items())
        mode = "`--quick` " if i.get("quick") else ""
        start += ", with `--follow-ups`" if i.get("follow_ups") else ""
        lines.append(f"- {mode}claims {', '.join(map(str, i['claims']))}, {start}: "
                     f"{i['seconds'] / 60:.0f} min ({parts}; evaluations in {i.get('eval_dtype', 'float32')}; "
                     f"commit {i['commit']})")  # fmt: skip
    return [*lines, ""]


def _reference(ref: dict) -> list[str]:
    rows = [("ChatGLM-6B untuned (published)", ref["published_untuned"]),
            ("ChatGLM-6B + LoRA r=8, 1/30 of the corpus (published)", ref["published_lora"]),
            ("SmolLM2-135M-Instruct untuned (ours)", ref["ours_untuned"]),
            ("SmolLM2-135M-Instruct + LoRA r=16 (ours, claim 1's run)", ref["ours_lora"])]  # fmt: skip
    lines = ["cmedical beside its published reference point. The models differ 44-fold in size, the "
             "published run's rows and answer length are its own, and ours generate at most 64 new tokens; "
             "read the columns as each model's own before/after, not as a ranking:", "",
             "| model | BLEU-4 | ROUGE-1 | ROUGE-2 | ROUGE-L |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {name} | {r['bleu']:.2f} | {r['rouge1']:.2f} | {r['rouge2']:.2f} | {r['rougeL']:.2f} |"
              for name, r in rows]  # fmt: skip
    return [*lines, ""]
