"""Label log-likelihood scoring: one full pass per candidate vs ft-plugin's shared-prefix cache.

    python benchmarks/label_scoring.py [--rows 96] [--batch-size 16]

Scores TFNS `valid.csv` headlines (finance-sentiment template, three labels) on the
embedded model both ways, back to back in one process, and reports the speed-up and
the largest difference between the two sets of scores (they must agree).

The naive way, which ft-plugin used before: for each example, the three candidates
(prompt + label) as one padded batch, full logits over every position. ft-plugin's
`score_labels`: the batch's shared prompt prefix once, each prompt's remainder once,
then only the answer tokens per candidate, from one key/value cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import require_shared, save  # noqa: E402


def naive_scores(model, tokenizer, example, labels) -> list[float]:  # noqa: ANN001
    """One forward pass over every candidate in full (padded batch of len(labels))."""
    import torch

    from ft_plugin.data.preview import render_example

    rendered = [
        render_example(tokenizer, {"prompt": example["prompt"],
                                   "completion": [{"role": "assistant", "content": label}]}, 1 << 30)
        for label in labels
    ]  # fmt: skip
    width = max(len(r.input_ids) for r in rendered)
    ids = torch.full((len(rendered), width), tokenizer.pad_token_id)
    attention = torch.zeros_like(ids)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for row, r in enumerate(rendered):
        ids[row, : len(r.input_ids)] = torch.tensor(r.input_ids)
        attention[row, : len(r.input_ids)] = 1
        mask[row, : len(r.loss_mask)] = torch.tensor(r.loss_mask, dtype=torch.bool)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
    return [float(x) for x in (logp * mask[:, 1:]).sum(-1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    data = require_shared("tfns")
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data.formats import convert_rows
    from ft_plugin.data.reading import read_rows
    from ft_plugin.evaluate.scoring import score_labels
    from ft_plugin.evaluate.targets import load_target

    path = str(data / "valid.csv")
    rows = read_rows(path)[: args.rows]
    examples = convert_rows(rows, DatasetSection(path=path, type="finance-sentiment")).examples
    labels = ["bearish", "bullish", "neutral"]
    target = load_target("embedded:smollm2-135m-instruct", with_baseline=False)
    model, tokenizer = target.model, target.tokenizer
    score_labels(model, tokenizer, examples[:2], labels)  # warm-up (thread pools, caches)

    started = time.perf_counter()
    naive = [naive_scores(model, tokenizer, e, labels) for e in examples]
    naive_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ours = score_labels(model, tokenizer, examples, labels, batch_size=args.batch_size)
    ours_seconds = time.perf_counter() - started

    diff = max(abs(a - b) for n, o in zip(naive, ours, strict=True) for a, b in zip(n, o, strict=True))  # fmt: skip
    same = sum(n.index(max(n)) == o.index(max(o)) for n, o in zip(naive, ours, strict=True))
    print(f"naive {naive_seconds:.1f} s, shared prefix {ours_seconds:.1f} s: "
          f"{naive_seconds / ours_seconds:.2f}x; max |diff| {diff:.1e}; same label {same}/{len(ours)}")  # fmt: skip
    save("label_scoring", {
        "rows": len(examples), "batch_size": args.batch_size,
        "naive_seconds": round(naive_seconds, 2), "shared_prefix_seconds": round(ours_seconds, 2),
        "speedup": round(naive_seconds / ours_seconds, 2), "max_abs_diff": diff,
        "same_label": same,
    })  # fmt: skip


if __name__ == "__main__":
    main()
