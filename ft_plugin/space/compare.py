"""Compare, without Gradio: the base model's and the tuned model's answers to one prompt,
within the Space's limits, each pair remembered so that its asker can rate it once.

Example (usage, not run as a doctest: it needs a served model)::

    result = state.comparing.compare("What helps a cough?", max_new_tokens=64)
    blind = state.comparing.blind_pair(result)  # the Rate tab's pair, in random order
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ft_plugin.errors import UserError
from ft_plugin.evaluate.generation import Answer, generate_answer

from .ratings import GeneratedPair, GeneratedPairs
from .served import ServedModels
from .settings import Limits


@dataclass
class Comparison:
    """The base and the tuned answer to one prompt, with the settings they used."""

    prompt: str
    adapter: str
    base: Answer
    tuned: Answer
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # e.g. "max_new_tokens clamped"


def checked_prompt(prompt: Any, limits: Limits) -> str:
    """The prompt, stripped, or a one-line refusal (empty, or over ``max_prompt_chars``).

    Example:
        >>> checked_prompt("  Why?  ", Limits())
        'Why?'
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError("prompt: write a question first")
    if len(prompt) > limits.max_prompt_chars:
        raise UserError(
            f"prompt: {len(prompt):,} characters is too long; the limit is "
            f"{limits.max_prompt_chars:,} characters"
        )
    return prompt.strip()


def generation_settings(
    limits: Limits, max_new_tokens: Any, temperature: Any, top_p: Any
) -> tuple[dict[str, Any], list[str]]:
    """Checked settings and notes; max_new_tokens above the cap is clamped to it."""
    notes = []
    default = limits.default_new_tokens
    try:
        tokens = int(max_new_tokens) if max_new_tokens is not None else default
        temperature = float(temperature or 0.0)
        top_p = float(1.0 if top_p is None else top_p)
    except (TypeError, ValueError):
        raise UserError("max_new_tokens, temperature, top_p: expected numbers") from None
    if tokens < 1:
        raise UserError(f"max_new_tokens: {tokens} must be at least 1")
    if tokens > limits.max_new_tokens:
        notes.append(
            f"max_new_tokens {tokens} is above this Space's cap; clamped to {limits.max_new_tokens}"
        )
        tokens = limits.max_new_tokens
    if not 0.0 <= temperature <= limits.max_temperature:
        raise UserError(f"temperature: {temperature} is outside 0-{limits.max_temperature}")
    if not 0.0 < top_p <= 1.0:
        raise UserError(f"top_p: {top_p} is outside (0, 1]")
    settings = {"max_new_tokens": tokens, "temperature": temperature, "top_p": top_p}
    return {**settings, "max_time": limits.max_time_s}, notes


class CompareService:
    """Base and tuned answers from the served model; every pair goes to ``pairs`` (what
    the rating service accepts) and blind pairs are shuffled with ``rng``."""

    def __init__(self, models: ServedModels, pairs: GeneratedPairs, rng: random.Random) -> None:
        self.models = models
        self.pairs = pairs
        self.rng = rng

    def check_prompt(self, prompt: Any) -> str:
        """The prompt, stripped, within this Space's limits (:func:`checked_prompt`)."""
        return checked_prompt(prompt, self.models.limits)

    def generation_settings(
        self, max_new_tokens: Any, temperature: Any, top_p: Any
    ) -> tuple[dict[str, Any], list[str]]:
        """Checked settings and notes (:func:`generation_settings`)."""
        return generation_settings(self.models.limits, max_new_tokens, temperature, top_p)

    def messages(self, prompt: str, label: str | None = None) -> list[dict[str, str]]:
        """The chat the model sees: the run's template system prompt, then the user."""
        template = self.models.adapter(label).template
        messages = []
        if template and template.system_prompt:
            messages.append({"role": "system", "content": template.system_prompt.strip()})
        return [*messages, {"role": "user", "content": prompt}]

    def compare(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        adapter: str | None = None,
        session: str | None = None,
    ) -> Comparison:
        """The base model's and the tuned model's answers to one prompt, remembered for
        ``session`` (a page or API client) so that it can rate them."""
        prompt = self.check_prompt(prompt)
        settings, notes = self.generation_settings(max_new_tokens, temperature, top_p)
        models = self.models
        with models.gate.slot(), models.using(adapter) as info:
            messages = self.messages(prompt, info.label)
            tokenizer = models.loaded.tokenizer
            tuned = generate_answer(models.loaded.model, tokenizer, messages, **settings)
            with models.loaded.baseline() as base_model:
                base = generate_answer(base_model, tokenizer, messages, **settings)
        shown = {k: v for k, v in settings.items() if k != "max_time"}
        self.pairs.add(session, GeneratedPair(prompt, info.label, base.text, tuned.text, shown))
        return Comparison(prompt, info.label, base, tuned, settings, notes)

    def blind_pair(self, comparison: Comparison) -> dict[str, Any]:
        """A rating pair with the answers in random order; the key stays server-side."""
        tuned_slot = self.rng.choice(("a", "b"))
        answers = {"tuned": comparison.tuned.text, "base": comparison.base.text}
        other = "b" if tuned_slot == "a" else "a"
        return {
            "prompt": comparison.prompt,
            "adapter": comparison.adapter,
            "tuned": tuned_slot,
            f"answer_{tuned_slot}": answers["tuned"],
            f"answer_{other}": answers["base"],
            "settings": {k: v for k, v in comparison.settings.items() if k != "max_time"},
        }
