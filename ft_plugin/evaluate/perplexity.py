"""Corpus-level perplexity with the loss positions of training.

``perplexity = exp(total NLL / number of predicted tokens)``, token-weighted over the
whole corpus (not a mean of per-row perplexities). Chat and instruction rows count only
the answer tokens, exactly those that carry loss in training (the same rendering as
``ft-plugin templates preview``); raw text (``completion``) counts every token after the
first. ``rows`` keeps each row's (summed NLL, tokens), so the perplexity of any subset
or bootstrap resample is ``exp(Σ nll / Σ tokens)`` over its rows. Text longer than the window is scored with a sliding window: each window sees
up to ``window`` tokens of context and scores only the tokens the previous one did not.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ft_plugin.data.formats import Example
from ft_plugin.data.preview import render_example


@dataclass
class PerplexityResult:
    nll_sum: float
    tokens: int
    rows: list[tuple[float, int]] = field(default_factory=list, repr=False)  # (nll, tokens)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_sum / self.tokens) if self.tokens else float("nan")


def _nll(model: Any, ids: list[int], scored: list[int]) -> tuple[float, int]:
    """Summed NLL of the tokens at positions where ``scored`` is 1 (position 0 never is)."""
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    targets = torch.tensor([t if s else -100 for t, s in zip(ids, scored, strict=True)][1:])
    positions = (targets != -100).nonzero().flatten().to(device)  # position p predicts p + 1
    if len(positions) == 0:
        return 0.0, 0
    with torch.inference_mode():
        logits = _logits_at(model, input_ids, positions).float()
    loss = torch.nn.functional.cross_entropy(logits, targets.to(device)[positions], reduction="sum")
    return float(loss), len(positions)


def _logits_at(model: Any, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The logits at ``positions`` only: the vocabulary projection of the other positions
    (the prompt, in a chat row) is skipped where the model takes ``logits_to_keep``."""
    forward = getattr(model, "get_base_model", lambda: model)().forward
    if "logits_to_keep" in inspect.signature(forward).parameters:
        return model(input_ids=input_ids, logits_to_keep=positions, use_cache=False).logits[0]
    return model(input_ids=input_ids, use_cache=False).logits[0, positions]


def _sliding(model: Any, ids: list[int], window: int, stride: int) -> tuple[float, int]:
    total, tokens, scored_until = 0.0, 0, 1  # the first token is never predicted
    for start in range(0, max(1, len(ids) - 1), stride):
        end = min(start + window, len(ids))
        chunk = ids[start:end]
        scored = [1 if start + i >= scored_until else 0 for i in range(len(chunk))]
        nll, count = _nll(model, chunk, scored)
        total, tokens, scored_until = total + nll, tokens + count, end
        if end == len(ids):
            break
    return total, tokens


def corpus_perplexity(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    *,
    sequence_len: int,
    stride: int | None = None,
) -> PerplexityResult:
    """Token-weighted perplexity of ``examples`` (prompt/completion rows or raw text).

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        corpus_perplexity(model, tokenizer, examples, sequence_len=512).perplexity  # 12.83
    """
    rows: list[tuple[float, int]] = []
    for example in examples:
        if "text" in example:
            ids = list(tokenizer(example["text"])["input_ids"])
            nll, count = _sliding(model, ids, sequence_len, stride or sequence_len // 2)
        else:
            rendered = render_example(tokenizer, example, sequence_len)
            nll, count = _nll(model, rendered.input_ids, rendered.loss_mask)
        rows.append((nll, count))
    return PerplexityResult(sum(n for n, _ in rows), sum(c for _, c in rows), rows)
