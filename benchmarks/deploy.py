"""What serving a tuned model costs, by how it is deployed: the embedded model tuned with
`medical-lora`, served as the HF model with its adapter, as the merged model, and as
GGUF f16 / q8_0 / q4_k_m under llama.cpp, side by side in one run.

    python benchmarks/deploy.py [--steps 20] [--answers 8] [--price-per-hour 0.10]

1. ``ft-plugin train medical-lora`` (as ``make demo``: 20 steps), then ``ft-plugin export``
   of that run as merged, f16, q8_0 and q4_k_m (each checked against the run by the
   command itself; ``--allow-tokenizer-difference``: README, Deployment);
2. each side in its own process, one after another (2 threads each): time to first token
   and the time of a 128-token answer to each held-out prompt (greedy, the end-of-turn
   token barred so that every answer is 128 tokens), the process's peak RSS, the weights'
   size on disk, and held-out perplexity of the reference answers on the same token ids.
   Cost of 1,000 answers: 1,000 × the median answer time, at ``--price-per-hour``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, save  # noqa: E402

from ft_plugin.export.run import gguf_name  # noqa: E402

WORK = Path(os.environ.get("BENCH_DEPLOY_WORK", REPO / "runs" / "bench-deploy"))
FT = str(Path(sys.executable).parent / "ft-plugin")
SIDES = ("hf-adapter", "merged", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m")
NEW_TOKENS, THREADS = 128, 2


def command(*args: str) -> float:
    """One ``ft-plugin`` command as a user types it; its wall seconds."""
    started = time.perf_counter()
    print("$ ft-plugin " + " ".join(args), flush=True)
    subprocess.run([FT, *args], check=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return round(time.perf_counter() - started, 1)


def held_out(run: Path, answers: int) -> tuple[Any, list[str], list[tuple[list[int], list[int]]]]:
    """The run's tokenizer, its held-out prompts as rendered text, and each held-out row's
    token ids and answer mask."""
    from ft_plugin import models
    from ft_plugin.data import build_training_data
    from ft_plugin.data.preview import render_example
    from ft_plugin.rundir import RunDir

    # the tokenizer and rows only: a side's peak memory is its own model's
    recipe = RunDir(run).load_recipe().recipe
    tok = models.load_tokenizer(recipe, models.resolve_base_model(recipe.base_model), quiet=True)
    rows = list(build_training_data(recipe, tok).eval)
    prompts = [tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
               for r in rows[:answers]]  # fmt: skip
    rendered = [render_example(tok, r, recipe.sequence_len) for r in rows]
    return tok, prompts, [(r.input_ids, r.loss_mask) for r in rendered]


def measure(side: str, run: Path, answers: int) -> dict[str, Any]:
    """One side, in this process: answer times, perplexity, peak RSS and size."""
    import torch

    torch.set_num_threads(THREADS)
    tok, prompts, scored = held_out(run, answers)
    stops = tok.convert_tokens_to_ids([tok.eos_token, "<|im_end|>"])
    if side.startswith("gguf-"):
        path = run / "export" / gguf_name(run, side[5:])
        timing, nll = _llama_cpp(path, tok, prompts, scored, stops)
        size = path.stat().st_size
    else:
        model, size = _hf_model(side, run)
        timing, nll = _transformers(model, tok, prompts, scored, stops)
    tokens = sum(count for _, count in nll)
    return {**timing, "perplexity": round(float(torch.tensor(sum(n for n, _ in nll) / tokens).exp()), 4),
            "rows": len(scored), "size_mb": round(size / 1e6, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # fmt: skip


def _hf_model(side: str, run: Path) -> tuple[Any, int]:
    from transformers import AutoModelForCausalLM

    from ft_plugin import models
    from ft_plugin.evaluate.targets import load_target
    from ft_plugin.rundir import RunDir

    if side == "merged":
        folder = run / "export" / "merged"
        return AutoModelForCausalLM.from_pretrained(folder).eval(), (
            folder / "model.safetensors"
        ).stat().st_size
    recipe = RunDir(run).load_recipe().recipe
    base = Path(models.resolve_base_model(recipe.base_model).path)
    size = (
        sum(p.stat().st_size for p in base.glob("*.safetensors"))
        + (run / "adapter_model.safetensors").stat().st_size
    )
    return load_target(str(run), with_baseline=False).model, size


def _transformers(
    model: Any, tok: Any, prompts: list[str], scored: list, stops: list[int]
) -> tuple[dict, list]:
    import torch

    from ft_plugin.export.check import hf_nll

    first, whole = [], []
    bar = [[s] for s in stops]  # bad_words_ids: the end of turn is never picked
    with torch.inference_mode():  # warm-up, not timed
        model.generate(**tok(prompts[0], return_tensors="pt", add_special_tokens=False),
                       max_new_tokens=8, pad_token_id=tok.pad_token_id)  # fmt: skip
    for text in prompts:
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        for count, times in ((1, first), (NEW_TOKENS, whole)):
            started = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**ids, do_sample=False, max_new_tokens=count, min_new_tokens=count,
                                     bad_words_ids=bar, pad_token_id=tok.pad_token_id)  # fmt: skip
            times.append(time.perf_counter() - started)
            assert out.shape[1] - ids["input_ids"].shape[1] == count
    return _timing(first, whole), [hf_nll(model, ids, mask) for ids, mask in scored]


def _llama_cpp(
    path: Path, tok: Any, prompts: list[str], scored: list, stops: list[int]
) -> tuple[dict, list]:
    from llama_cpp import Llama

    from ft_plugin.export.gguf_check import llama_nll

    context = max(len(ids) for ids, _ in scored) + NEW_TOKENS + 64
    llm = Llama(
        model_path=str(path), n_ctx=context, logits_all=True, n_threads=THREADS, verbose=False
    )
    bar = {token: -1e9 for token in stops}
    llm.create_completion(prompts[0], max_tokens=8, temperature=0.0)  # warm-up, not timed
    first, whole = [], []
    for text in prompts:
        for count, times in ((1, first), (NEW_TOKENS, whole)):
            llm.reset()  # no prompt cache between answers
            started = time.perf_counter()
            out = llm.create_completion(text, max_tokens=count, temperature=0.0, top_k=1,
                                        repeat_penalty=1.0, logit_bias=bar)  # fmt: skip
            times.append(time.perf_counter() - started)
            # llama-cpp-python's usage counts one token more than max_tokens writes at 128
            assert out["usage"]["completion_tokens"] in (count, count + 1), out["usage"]
    nll = [llama_nll(llm, ids, mask) for ids, mask in scored]
    llm.close()
    return _timing(first, whole), nll


def _timing(first: list[float], whole: list[float]) -> dict[str, float]:
    ttft, answer = statistics.median(first), statistics.median(whole)
    return {"ttft_ms": round(ttft * 1000, 1), "answer_s": round(answer, 3),
            "tokens_per_second": round(NEW_TOKENS / answer, 1), "answers": len(whole)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--answers", type=int, default=8)
    parser.add_argument("--price-per-hour", type=float, default=0.10)
    parser.add_argument(
        "--reuse", action="store_true", help="keep a trained run in the work folder"
    )
    parser.add_argument("--measure", choices=SIDES, help=argparse.SUPPRESS)  # one side, in a child
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.run, args.answers)))
        return
    run = WORK / "medical"
    if args.reuse and (run / "metrics.json").is_file():
        seconds: dict[str, Any] = {"train": "reused"}
    else:
        seconds = {"train": command("train", "medical-lora", "--output-dir", str(run), "--set",
                                    f"max_steps={args.steps}", "--set", "eval_steps=10")}  # fmt: skip
    for fmt, quant in (("merged", "f16"), ("gguf", "f16"), ("gguf", "q8_0"), ("gguf", "q4_k_m")):
        done = run / "export" / ("merged" if fmt == "merged" else gguf_name(run, quant))
        if args.reuse and done.exists():
            seconds[f"export_{fmt}_{quant}"] = "reused"
            continue
        seconds[f"export_{fmt}_{quant}"] = command("export", str(run), "--format", fmt, "--quant", quant,
                                                   "--allow-tokenizer-difference")  # fmt: skip
    sides = {}
    for side in SIDES:
        done = subprocess.run([sys.executable, __file__, "--measure", side, "--run", str(run),
                               "--answers", str(args.answers)], check=True, capture_output=True,
                              text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
        sides[side] = json.loads(done.stdout.strip().splitlines()[-1])
        answer_hours = sides[side]["answer_s"] * 1000 / 3600
        sides[side]["cost_per_1k_answers"] = round(answer_hours * args.price_per_hour, 4)
        print(side, sides[side], flush=True)
    checks = json.loads((run / "export" / "export.json").read_text())
    save("deploy", {"settings": {**vars(args), "new_tokens": NEW_TOKENS, "threads": THREADS,
                                 "measure": None, "run": None},
                    "seconds": seconds, "sides": sides,
                    "checks": {name: {k: v for k, v in r["check"].items() if k != "differing"}
                               for name, r in checks.items()}})  # fmt: skip


if __name__ == "__main__":
    main()
