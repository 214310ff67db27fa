"""`ft-plugin eval --dtype bfloat16` against the float32 default, back to back, on the
embedded model at the evaluation's own default of 200 rows:

    python benchmarks/eval_dtype.py

- perplexity of 200 held-out cmedical general-medicine answers (claims.py's set, 512
  tokens with the template);
- accuracy of 200 seeded TFNS validation headlines, label log-likelihood scoring.

Each is timed once per dtype in one process, float32 first (the weights are loaded
fresh for each). The ratio is float32's seconds over bfloat16's; the per-row numbers show
how far bf16 moves them.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import claims_data  # noqa: E402
from _common import EMBEDDED, REPO, embedded_tokenizer, require_shared, save  # noqa: E402

DTYPES = ("float32", "bfloat16")


def _timed(data: Path, dtype: str, **settings: object) -> dict:
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation

    started = time.perf_counter()
    _, results, _, _ = run_evaluation(
        EMBEDDED, EvalSettings(data=str(data), baseline=False, bootstrap=0, dtype=dtype, **settings)
    )
    scored = results["target"]
    return {"seconds": round(time.perf_counter() - started, 1), "metrics": scored.metrics,
            "rows": scored.rows}  # fmt: skip


def perplexity_case(folder: Path) -> dict:
    built = claims_data.cmedical_files(
        require_shared("cmedical"), folder, embedded_tokenizer(), sequence_len=512
    )
    runs = {d: _timed(built["paths"]["general_test"], d, template="medical", metrics=["perplexity"],
                      sequence_len=512, max_samples=0) for d in DTYPES}  # fmt: skip
    nll = {d: r["rows"]["nll"] for d, r in runs.items()}
    tokens = runs["float32"]["rows"]["tokens"]
    row_change = [
        abs(b - a) / t for a, b, t in zip(nll["float32"], nll["bfloat16"], tokens, strict=True)
    ]
    return {"rows": len(tokens), "tokens": sum(tokens),
            **{d: {"seconds": r["seconds"], "perplexity": r["metrics"]["perplexity"]} for d, r in runs.items()},
            "max_row_nll_per_token_change": round(max(row_change), 5),
            "mean_row_nll_per_token_change": round(sum(row_change) / len(row_change), 5)}  # fmt: skip


def accuracy_case() -> dict:
    valid = require_shared("tfns") / "valid.csv"
    runs = {d: _timed(valid, d, template="finance-sentiment", metrics=["accuracy"], max_samples=200)
            for d in DTYPES}  # fmt: skip
    predicted = {d: r["rows"]["predicted"] for d, r in runs.items()}
    same = sum(a == b for a, b in zip(predicted["float32"], predicted["bfloat16"], strict=True))
    return {"rows": len(predicted["float32"]),
            **{d: {"seconds": r["seconds"], "accuracy": r["metrics"]["accuracy"]} for d, r in runs.items()},
            "same_prediction_share": round(same / len(predicted["float32"]), 4)}  # fmt: skip


def main() -> None:
    folder = REPO / "runs" / "bench-eval-dtype"
    cases = {"perplexity (cmedical, 200 rows)": perplexity_case(folder),
             "accuracy (TFNS, 200 rows)": accuracy_case()}  # fmt: skip
    for case in cases.values():
        case["float32_over_bfloat16_seconds"] = round(
            case["float32"]["seconds"] / case["bfloat16"]["seconds"], 2
        )
    save("eval_dtype", {"cases": cases, "base": EMBEDDED})
    ppl = cases["perplexity (cmedical, 200 rows)"]
    print(f"perplexity {ppl['float32']['perplexity']} vs {ppl['bfloat16']['perplexity']} "
          f"({math.log(ppl['bfloat16']['perplexity'] / ppl['float32']['perplexity']):+.5f} log)")  # fmt: skip


if __name__ == "__main__":
    main()
