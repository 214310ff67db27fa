"""Rate, without Gradio: one blind rating of a pair this Space generated, checked,
PII-scrubbed and appended to the ratings store (:mod:`.ratings`).

Example (usage, not run as a doctest: the pair comes from a comparison)::

    record = state.rating.rate(prompt="What helps a cough?", answer_a=base, answer_b=tuned,
                               scores={"relevance": 4, "accuracy": 4, "readability": 5},
                               preference="b", tuned="b")
    state.rating.summary()["ratings"]  # 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from . import ratings
from .compare import checked_prompt
from .settings import Limits


class RatingService:
    """The ratings of one Space: the store (``ratings.jsonl``, pushed to a Hub dataset
    when configured) and the generated pairs a rating may take (``pairs``)."""

    def __init__(
        self, data_dir: Path, limits: Limits, *, ratings_dataset: str | None = None
    ) -> None:
        self.limits = limits
        self.store = ratings.RatingsStore(
            data_dir, ratings_dataset=ratings_dataset, every_minutes=limits.ratings_push_minutes
        )
        self.pairs = ratings.GeneratedPairs(limits.pair_minutes)

    @property
    def path(self) -> Path:
        """``DATA_DIR/ratings.jsonl``."""
        return self.store.path

    @property
    def scheduler(self) -> Any:
        """The Hub dataset's ``CommitScheduler``, or None (no dataset, or it cannot push)."""
        return self.store.scheduler

    @property
    def push_error(self) -> str | None:
        """Why ratings stay on the Space's disk, shown on the Rate tab; None when pushed."""
        return self.store.push_error

    def rate(
        self,
        *,
        prompt: str,
        answer_a: str,
        answer_b: str,
        scores: dict[str, Any],
        preference: str,
        tuned: str = "b",
        adapter: str | None = None,
        source: str = "api",
        session: str | None = None,
    ) -> dict[str, Any]:
        """Rate a pair this Space generated for ``session`` (one rating each) and append
        it to ratings.jsonl as one JSON line (unblinded, PII-scrubbed)."""
        prompt = checked_prompt(prompt, self.limits)
        answers = {"answer_a": answer_a, "answer_b": answer_b}
        max_chars = self.limits.max_answer_chars
        checked, choice, slot = ratings.check_rating(answers, scores, preference, tuned, max_chars)
        other = "b" if slot == "a" else "a"
        pair = self.pairs.take(session, prompt, tuned=answers[f"answer_{slot}"],
                               base=answers[f"answer_{other}"])  # fmt: skip
        if adapter and adapter != pair.adapter:
            raise UserError(f"adapter {adapter!r:.80}: these answers came from {pair.adapter}")
        self.pairs.count_rating(session, self.limits.max_ratings_per_session)
        record = ratings.new_record(
            adapter=pair.adapter,
            prompt=ratings.scrubbed(prompt),
            answers={name: ratings.scrubbed(text) for name, text in answers.items()},
            scores=checked,
            preference=choice,
            tuned=slot,
            source=source,
            settings=pair.settings,
        )
        self.store.append(record)
        return record

    def read(self) -> list[dict[str, Any]]:
        """Every rating written so far, oldest first."""
        return self.store.read()

    def summary(self) -> dict[str, Any]:
        """Counts, mean scores per model (with 95% intervals) and preference shares."""
        return self.store.summary()
