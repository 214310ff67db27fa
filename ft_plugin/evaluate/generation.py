"""Timed generation, as a served model answers: one request at a time, prompt to last token.

One helper, :func:`generate_answer`, serves both the evaluation (greedy, batch 1, over a
dataset: :func:`generate_answers`) and the Space (one chat answer, optionally sampled, with
a time limit). ``--generation-batch-size`` batches the evaluation's prompts for throughput.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ft_plugin.data.formats import Example


@dataclass
class Answer:
    """One generated answer and how long it took.

    Example:
        >>> Answer("Rest.", latency_ms=12.0, new_tokens=3, tokens_per_second=250).stats()
        '12 ms · 3 tokens · 250.0 tokens/s'
    """

    text: str
    latency_ms: float
    new_tokens: int
    tokens_per_second: float
    hit_time_limit: bool = False

    def stats(self) -> str:
        line = (
            f"{self.latency_ms:,.0f} ms · {self.new_tokens} tokens · "
            f"{self.tokens_per_second:,.1f} tokens/s"
        )
        if self.new_tokens and not self.text:
            # An empty box alone reads as a broken Space; say what the model produced.
            line += " · no visible text (only whitespace or special tokens)"
        return line + (" · stopped at the time limit" if self.hit_time_limit else "")


def _generate_kwargs(
    tokenizer: Any, max_new_tokens: int, temperature: float, top_p: float, max_time: float | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "do_sample": temperature > 0,
    }
    if temperature > 0:
        kwargs.update(temperature=temperature, top_p=top_p)
    if max_time is not None:
        kwargs["max_time"] = max_time
    return kwargs


def generate_answer(
    model: Any,
    tokenizer: Any,
    messages: list[dict[str, str]] | str,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_time: float | None = None,
) -> Answer:
    """One chat answer (to ``messages``, or to a prompt already rendered as text), timed
    from prompt to last token.

    ``temperature`` 0 decodes greedily; above 0 it samples with ``top_p``. ``max_time``
    (seconds) stops generation early (transformers' ``MaxTimeCriteria``).
    """
    device = next(model.parameters()).device
    if isinstance(messages, str):  # already rendered: a preference pair's prompt
        inputs = tokenizer(messages, return_tensors="pt", add_special_tokens=False).to(device)
    else:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(device)
    kwargs = _generate_kwargs(tokenizer, max_new_tokens, temperature, top_p, max_time)
    started = time.perf_counter()
    with torch.inference_mode():
        ids = model.generate(**inputs, **kwargs)
    elapsed = time.perf_counter() - started
    new = ids[0, inputs["input_ids"].shape[1] :]
    count = int(new.numel())
    ended = count > 0 and int(new[-1]) == tokenizer.eos_token_id
    stopped = max_time is not None and elapsed >= max_time and count < max_new_tokens
    return Answer(
        text=tokenizer.decode(new, skip_special_tokens=True).strip(),
        latency_ms=round(elapsed * 1000, 1),
        new_tokens=count,
        tokens_per_second=round(count / elapsed, 2) if elapsed > 0 else 0.0,
        hit_time_limit=bool(stopped and not ended),
    )


@dataclass
class Generations:
    texts: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    new_tokens: list[int] = field(default_factory=list)

    def add(self, answer: Answer) -> None:
        self.texts.append(answer.text)
        self.latencies_ms.append(answer.latency_ms)
        self.new_tokens.append(answer.new_tokens)

    @property
    def tokens_per_second(self) -> float:
        seconds = sum(self.latencies_ms) / 1000
        return sum(self.new_tokens) / seconds if seconds else 0.0


def generate_answers(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    *,
    max_new_tokens: int,
    batch_size: int = 1,
    desc: str = "generating answers",
) -> Generations:
    """Greedy answers to every example, timed from prompt to last token.

    ``batch_size`` 1 answers one request at a time, as a server does (the latency metrics
    need that); above 1, prompts are left-padded into batches for throughput (BLEU/ROUGE
    over hundreds of rows), and each row's latency is its batch's time. A terminal shows
    a bar named ``desc`` (rows answered), as the training bar does; logs get none.
    """
    from tqdm.auto import tqdm

    out = Generations()
    if batch_size > 1:
        batches = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
        with tqdm(total=len(examples), desc=desc, unit="row", leave=False, disable=None) as shown:
            for batch in batches:
                for answer in _generate_batch(
                    model, tokenizer, [e["prompt"] for e in batch], max_new_tokens
                ):
                    out.add(answer)
                shown.update(len(batch))
        return out
    shown = tqdm(examples, desc=desc, unit="row", leave=False, disable=None)
    for example in shown:
        out.add(generate_answer(model, tokenizer, example["prompt"], max_new_tokens=max_new_tokens))
    return out


def _generate_batch(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], max_new_tokens: int
) -> list[Answer]:
    """Greedy answers to a left-padded batch of chat prompts."""
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        inputs = tokenizer.apply_chat_template(
            conversations, add_generation_prompt=True, return_tensors="pt", return_dict=True,
            padding=True,
        ).to(device)  # fmt: skip
    finally:
        tokenizer.padding_side = side
    kwargs = _generate_kwargs(tokenizer, max_new_tokens, 0.0, 1.0, None)
    started = time.perf_counter()
    with torch.inference_mode():
        ids = model.generate(**inputs, **kwargs)
    elapsed = time.perf_counter() - started
    answers = []
    for row in ids[:, inputs["input_ids"].shape[1] :]:
        kept = row[row != tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else row
        count = int(kept.numel())
        answers.append(Answer(
            text=tokenizer.decode(kept, skip_special_tokens=True).strip(),
            latency_ms=round(elapsed * 1000, 1), new_tokens=count,
            tokens_per_second=round(count / elapsed, 2) if elapsed > 0 else 0.0,
        ))  # fmt: skip
    return answers
