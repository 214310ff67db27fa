"""`ft-plugin eval` of a preference run (`rl:`): on its held-out pairs, how the tuned model
ranks the chosen answer against the rejected one, compared with the run it started from.

Per pair, each model's summed log-probability of the chosen (c) and rejected (r) answer
after the prompt, as TRL scores them. Reported for the tuned model and its starting point
(`lora_model_dir`'s run, else the base), with paired-bootstrap intervals of the change:

- ``pair_accuracy``: share of pairs where log p(c) > log p(r) (0-1);
- ``reward_accuracy`` / ``reward_margin``: DPO's implicit reward against the starting
  point, β·[(log π(c) − log π₀(c)) − (log π(r) − log π₀(r))], its share above 0 and its
  mean (the starting point's own are 0 by definition);
- ``answer_perplexity``: perplexity of the chosen answers;
- with ``--metrics rougeL,chrf,…``: greedy answers to the pairs' prompts scored against
  the chosen answers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ft_plugin.errors import UserError

if TYPE_CHECKING:
    from .dataset import EvalSettings
    from .targets import LoadedTarget

PREFERENCE_METRICS = ("pair_accuracy", "reward_accuracy", "reward_margin", "answer_perplexity")


@dataclass
class PairScores:
    """Summed log-probabilities and token counts of each pair's two answers."""

    chosen: list[float]
    rejected: list[float]
    chosen_tokens: list[int]


def _answer_logp(model: Any, prompt_ids: list[int], answer_ids: list[int], limit: int) -> float:
    ids = (prompt_ids + answer_ids)[:limit]
    start = min(len(prompt_ids), len(ids) - 1)
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(torch.tensor([ids], device=device)).logits[0, start - 1 : -1].float()
    targets = torch.tensor(ids[start:], device=device)
    return float(torch.log_softmax(logits, -1).gather(1, targets[:, None]).sum())


def score_pairs(model: Any, tokenizer: Any, pairs: list[dict[str, str]], limit: int) -> PairScores:
    """Each pair's answers scored as TRL's DPOTrainer scores them: prompt and answer
    tokenized apart, joined, cut at ``limit`` tokens, the answer's tokens summed."""
    from tqdm.auto import tqdm

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    out = PairScores([], [], [])
    for pair in tqdm(pairs, desc="scoring pairs", unit="pair", leave=False, disable=None):
        prompt = ids(pair["prompt"])
        for side in ("chosen", "rejected"):
            answer = ids(pair[side])
            getattr(out, side).append(_answer_logp(model, prompt, answer, limit))
            if side == "chosen":
                out.chosen_tokens.append(max(1, min(len(answer), limit - len(prompt))))
    return out


def preference_result(scores: PairScores, start: PairScores, beta: float) -> dict[str, Any]:
    """The metrics above as per-row statistics (``RowStatistic``) and per-row values:
    ``{"statistics": {metric: …}, "rows": {metric: [...]}}``."""
    from .intervals import RowStatistic

    rewards = [beta * ((c - c0) - (r - r0)) for c, r, c0, r0
               in zip(scores.chosen, scores.rejected, start.chosen, start.rejected, strict=True)]  # fmt: skip
    rows = {
        "pair_accuracy": [
            float(c > r) for c, r in zip(scores.chosen, scores.rejected, strict=True)
        ],
        "reward_accuracy": [float(x > 0) for x in rewards],
        "reward_margin": rewards,
    }
    statistics = {name: RowStatistic.mean(values) for name, values in rows.items()}
    nll = [(-c, n) for c, n in zip(scores.chosen, scores.chosen_tokens, strict=True)]
    statistics["answer_perplexity"] = RowStatistic.perplexity(nll)
    return {
        "statistics": statistics,
        "rows": {k: [round(v, 6) for v in vs] for k, vs in rows.items()},
    }


@contextlib.contextmanager
def starting_model(loaded: LoadedTarget) -> Iterator[Any]:
    """The model the run started from: its `lora_model_dir` run, else the base."""
    from .targets import load_target

    start = loaded.recipe.lora_model_dir
    if start:
        yield load_target(start, with_baseline=False).model
    elif loaded.baseline is not None:  # an adapter run: its adapter disabled
        with loaded.baseline() as base:
            yield base
    else:  # full weights: the base loaded beside them
        yield load_target(loaded.recipe.base_model, with_baseline=False).model


def held_out_pairs(loaded: LoadedTarget, settings: EvalSettings) -> list[dict[str, str]]:
    """The run's held-out pairs (a seeded `--max-samples` of them)."""
    import random

    from ft_plugin.data import build_training_data

    if loaded.recipe.rl == "kto":
        raise UserError(f"{loaded.name}: rl: kto has no pairs to rank; evaluate its answers with "
                        "--data on prompt / answer rows")  # fmt: skip
    held_out = build_training_data(loaded.recipe, loaded.tokenizer).eval
    if held_out is None:
        raise UserError(f"{loaded.name}: the recipe holds no pairs out (val_set_size or "
                        "test_datasets); pass --data with prompt / answer rows instead")  # fmt: skip
    pairs = list(held_out)
    if settings.max_samples and len(pairs) > settings.max_samples:
        pairs = random.Random(settings.seed).sample(pairs, settings.max_samples)
    return pairs


def answer_examples(pairs: list[dict[str, str]], tokenizer: Any) -> list[dict[str, Any]]:
    """The pairs as prompt / reference rows for the text metrics: the prompt as rendered
    text, the chosen answer without its end-of-turn token."""

    def plain(text: str) -> str:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return tokenizer.decode(ids, skip_special_tokens=True).strip()

    return [{"prompt": p["prompt"], "completion": [{"role": "assistant", "content": plain(p["chosen"])}]}
            for p in pairs]  # fmt: skip


def check_beta(beta: float | None) -> float:
    """The run's β (TRL's default 0.1 when the recipe left `rl_beta` empty)."""
    value = 0.1 if beta is None else beta
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"rl_beta: {beta} is not a positive number")
    return value
