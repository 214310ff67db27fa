"""The deployment section of BENCHMARKS.md, every number read from results/deploy.json
(written by deploy.py)."""

from __future__ import annotations

NAMES = {"hf-adapter": "transformers, base + LoRA adapter (float32)",
         "merged": "transformers, merged (float32)", "gguf-f16": "llama.cpp, GGUF f16",
         "gguf-q8_0": "llama.cpp, GGUF q8_0", "gguf-q4_k_m": "llama.cpp, GGUF q4_k_m"}  # fmt: skip


def deploy_summary(result: dict) -> str:
    sides = result["sides"]
    hf, best = sides["hf-adapter"], max(sides.values(), key=lambda s: s["tokens_per_second"])
    name = next(k for k, v in sides.items() if v is best)
    return (f"{NAMES[name]}: {best['tokens_per_second']:.1f} tokens/s vs "
            f"{hf['tokens_per_second']:.1f} for the adapter in transformers "
            f"({best['tokens_per_second'] / hf['tokens_per_second']:.1f}x), held-out perplexity "
            f"{best['perplexity']:.3f} vs {hf['perplexity']:.3f}")  # fmt: skip


def deploy_section(result: dict, header: list[str]) -> list[str]:
    s, sides = result["settings"], result["sides"]
    hf = sides["hf-adapter"]
    lines = ["### Deployment: the same tuned model, served five ways", "", *header,
             "| served as | time to first token | 128-token answer | tokens/s | vs adapter | peak RSS "
             "| size on disk | held-out perplexity | 1,000 answers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for side, m in sides.items():
        lines.append(f"| {NAMES[side]} | {m['ttft_ms']:,.0f} ms | {m['answer_s']:.2f} s | "
                     f"{m['tokens_per_second']:.1f} | {m['tokens_per_second'] / hf['tokens_per_second']:.2f}x | "
                     f"{m['peak_rss_mb']:,} MB | {m['size_mb']:,.0f} MB | {m['perplexity']:.3f} | "
                     f"{m['answer_s'] * 1000 / 3600:.2f} h, ${m['cost_per_1k_answers']:.3f} |")  # fmt: skip
    notes = []
    for name, check in result["checks"].items():
        if check.get("prompts_tokenized_otherwise"):
            notes.append(f"`{name}` {check['prompts_tokenized_otherwise']} of {check['rows']}")
    lines += ["", f"The embedded SmolLM2-135M-Instruct tuned with `medical-lora` for {s['steps']} "
              f"steps; each side in its own process with {s['threads']} threads, one after another; "
              f"median over {hf['answers']} held-out prompts of the time to the first token and of a "
              f"{s['new_tokens']}-token greedy answer (the end-of-turn token barred); perplexity of "
              f"the {hf['rows']} held-out reference answers on the same token ids. Size: what the side "
              "loads (base weights + adapter for the first row). 1,000 answers: machine-hours "
              f"at the median answer time, and their cost at ${s['price_per_hour']:.2f} per hour "
              "(an assumed price for a 2-vCPU machine; scale it to yours). Peak RSS is the "
              "whole process: Python, torch, datasets and the tokenizer in every row, and in the "
              "GGUF rows also llama.cpp's logits at every position, which the perplexity reads.",
              ""]  # fmt: skip
    if notes:
        lines += ["Every export passed `ft-plugin export`'s check against the run, run with "
                  "`--allow-tokenizer-difference`: llama.cpp tokenizes some held-out prompts "
                  f"otherwise than training did ({'; '.join(notes)} prompts; README, Deployment). "
                  "The perplexities above score the run's own token ids.", ""]  # fmt: skip
    return lines
