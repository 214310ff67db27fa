"""Classification answers: label log-likelihood (default) or parsed generations.

Log-likelihood scoring renders each candidate label as the assistant's answer, exactly
as in training (the label and the end-of-turn tokens), sums the log-probabilities of
those tokens given the prompt, and picks the most likely label. No text is parsed, so a
model that would phrase its answer differently is still scored on what it believes.
"""

from __future__ import annotations

from typing import Any

import torch

from ft_plugin.data.formats import Example
from ft_plugin.data.preview import render_example


def label_log_likelihoods(
    model: Any, tokenizer: Any, example: Example, labels: list[str]
) -> list[float]:
    """Summed log-probability of each label as the answer to ``example``'s prompt."""
    rendered = [
        render_example(
            tokenizer,
            {"prompt": example["prompt"], "completion": [{"role": "assistant", "content": label}]},
            sequence_len=1 << 30,
        )
        for label in labels
    ]
    device = next(model.parameters()).device
    width = max(len(r.input_ids) for r in rendered)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rendered), width), pad, device=device)
    attention = torch.zeros_like(ids)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for row, r in enumerate(rendered):
        ids[row, : len(r.input_ids)] = torch.tensor(r.input_ids)
        attention[row, : len(r.input_ids)] = 1
        mask[row, : len(r.loss_mask)] = torch.tensor(r.loss_mask, dtype=torch.bool)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    scored = (log_probs * mask[:, 1:]).sum(dim=-1)
    return [float(x) for x in scored]


def predict_label(model: Any, tokenizer: Any, example: Example, labels: list[str]) -> str:
    scores = label_log_likelihoods(model, tokenizer, example, labels)
    return labels[max(range(len(labels)), key=scores.__getitem__)]
