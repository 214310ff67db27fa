"""Greedy generation with per-request latency, as a served model would answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ft_plugin.data.formats import Example


@dataclass
class Generations:
    texts: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    new_tokens: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        seconds = sum(self.latencies_ms) / 1000
        return sum(self.new_tokens) / seconds if seconds else 0.0


def generate_answers(
    model: Any, tokenizer: Any, examples: list[Example], *, max_new_tokens: int
) -> Generations:
    """One request at a time (batch 1), greedy, timed from prompt to last token."""
    out = Generations()
    device = next(model.parameters()).device
    for example in examples:
        prompt = tokenizer.apply_chat_template(
            example["prompt"], add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(device)
        started = time.perf_counter()
        with torch.inference_mode():
            ids = model.generate(
                **prompt, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        out.latencies_ms.append((time.perf_counter() - started) * 1000)
        new = ids[0, prompt["input_ids"].shape[1] :]
        out.new_tokens.append(int(new.numel()))
        out.texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    return out
