"""The ratings store: blind A/B ratings appended to ``DATA_DIR/ratings.jsonl``.

Only pairs the Space generated can be rated (:class:`GeneratedPairs`): a comparison is
remembered for its session (the page, or one ``gradio_client`` client) for a while, and
one rating takes it; free text sent to ``/rate`` is refused. A session rates at most
``max_ratings_per_session`` pairs, and prompts and answers are PII-scrubbed
(``ft_plugin.data.cleaning.pii``) before the line is written and pushed.

One JSON line per rating, unblinded (which answer was the tuned one), written under a
lock (and a POSIX file lock) so concurrent raters never interleave half lines. With a
``ratings_dataset`` the file is committed to a private Hub dataset every few minutes by
``huggingface_hub.CommitScheduler``; a push that cannot start keeps the ratings on the
Space's disk and says why, in the log and on the Rate tab.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huggingface_hub import CommitScheduler

from ft_plugin.errors import UserError
from ft_plugin.evaluate.preference_pairs import RATINGS_FILE, pairs_from_records

try:  # POSIX advisory lock on the ratings file, on top of the in-process lock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOG = logging.getLogger("ft_plugin.space")
CRITERIA = ("relevance", "accuracy", "readability")
SCORE_FIELDS = tuple(f"{c}_{slot}" for slot in ("a", "b") for c in CRITERIA)
PREFERENCES = ("a", "b", "tie")


class RatingsStore:
    """``ratings.jsonl`` in ``data_dir``, optionally pushed to a Hub dataset."""

    def __init__(
        self, data_dir: Path, *, ratings_dataset: str | None = None, every_minutes: float = 5.0
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / RATINGS_FILE
        self.lock: Any = threading.Lock()
        self.scheduler: CommitScheduler | None = None
        self.push_error: str | None = None  # why ratings stay local, shown in the UI
        if ratings_dataset:
            self._start_push(ratings_dataset, every_minutes)

    def _start_push(self, repo_id: str, every_minutes: float) -> None:
        """Commit ratings.jsonl to a Hub dataset every few minutes (and at exit).

        A failure to start keeps the Space working with ratings on its own disk, and says
        so, with the reason, in the log and on the Rate tab (never the token).
        """
        try:
            self.scheduler = CommitScheduler(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=self.data_dir,
                allow_patterns=[RATINGS_FILE],
                every=every_minutes,
                private=True,
            )
        except Exception as exc:  # noqa: BLE001 - any failure leaves ratings local, said loudly
            self.push_error = (
                f"ratings are kept in {self.path} only, not pushed to the Hub dataset "
                f"{repo_id}: {hub_failure_reason(exc)}"
            )
            LOG.error("%s", self.push_error)
            return
        self.lock = self.scheduler.lock  # no commit reads half a line

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock, self.path.open("a", encoding="utf-8") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released on close
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        records = []
        for number, line in enumerate(self.path.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                LOG.warning("%s:%d: not JSON, skipped", self.path, number)
        return records

    def summary(self) -> dict[str, Any]:
        """Counts, mean scores per model (with 95% intervals) and preference shares."""
        return summarize(self.read())


def _stats(values: list[int]) -> dict[str, Any]:
    from ft_plugin.evaluate.human import ScoreStats

    s = ScoreStats.of(values)
    return {"mean": s.mean, "ci95": s.ci95, "n": s.n}


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, mean scores per model (with 95% intervals) and preference shares."""
    values: dict[tuple[str, str], list[int]] = {}
    for r in records:
        for slot in ("a", "b"):
            for criterion in CRITERIA:
                score = r.get(f"{criterion}_{slot}")
                if isinstance(score, int) and r.get(slot) in ("base", "tuned"):
                    values.setdefault((r[slot], criterion), []).append(score)
    scores = {
        model: {c: _stats(values.get((model, c), [])) for c in CRITERIA}
        for model in ("base", "tuned")
    }
    overall = {c: _stats([r[c] for r in records if isinstance(r.get(c), int)]) for c in CRITERIA}
    preferred = [r.get("preferred") for r in records if r.get("preferred")]
    counts = {k: preferred.count(k) for k in ("tuned", "base", "tie")}
    shares = {k: (c / len(preferred) if preferred else 0.0) for k, c in counts.items()}
    pairs = pairs_from_records(records)  # what `ft-plugin data preferences` would build
    return {
        "ratings": len(records),
        "scores": scores,
        "overall": overall,
        "preference": shares,
        "preference_counts": counts,
        "pairs": pairs.report(),
    }


def check_rating(
    answers: dict[str, Any], scores: dict[str, Any], preference: Any, tuned: Any, max_chars: int
) -> tuple[dict[str, int], str, str]:
    """The checked scores, preference ("a", "b", "tie") and tuned slot ("a", "b")."""
    for name, answer in answers.items():
        if not isinstance(answer, str):
            raise UserError(f"{name}: expected text")
        if len(answer) > max_chars:
            raise UserError(f"{name}: longer than {max_chars:,} characters")
    checked = checked_scores(scores)
    choice = str(preference or "").strip().lower()
    if choice not in PREFERENCES:
        raise UserError(f"preference: expected a, b or tie, got {preference!r}")
    slot = str(tuned or "").strip().lower()
    if slot not in ("a", "b"):
        raise UserError(f"tuned: expected a or b (which answer is the tuned one), got {slot!r}")
    return checked, choice, slot


@dataclass
class GeneratedPair:
    """A base and a tuned answer the Space generated for one prompt."""

    prompt: str
    adapter: str
    base: str
    tuned: str
    settings: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)


class GeneratedPairs:
    """The pairs generated per session, so that a rating takes only one of those.

    Bounded: ``per_session`` latest pairs per session, ``sessions`` sessions (the least
    recently used forgotten), each pair for ``minutes``.

    Example:
        >>> book = GeneratedPairs(minutes=60)
        >>> book.add("s1", GeneratedPair("q", "run", base="no", tuned="yes"))
        >>> book.take("s1", "q", tuned="yes", base="no").adapter
        'run'
        >>> book.take("s1", "q", tuned="yes", base="no")
        Traceback (most recent call last):
        ...
        ft_plugin.errors.UserError: rate: this Space did not generate these answers for you (or they are rated already, or older than 60 minutes): compare the prompt first, then rate that pair
    """

    def __init__(self, minutes: float, per_session: int = 16, sessions: int = 10_000) -> None:
        self.seconds = minutes * 60
        self.per_session = per_session
        self.sessions = sessions
        self._pairs: OrderedDict[str, list[GeneratedPair]] = OrderedDict()
        self._ratings: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, session: str | None, pair: GeneratedPair) -> None:
        key = session or ""
        with self._lock:
            same = (pair.prompt, pair.tuned, pair.base)  # greedy decoding repeats a pair
            pairs = [p for p in self._pairs.pop(key, [])
                     if not self._expired(p) and (p.prompt, p.tuned, p.base) != same]  # fmt: skip
            self._pairs[key] = [*pairs, pair][-self.per_session :]
            while len(self._pairs) > self.sessions:
                forgotten, _ = self._pairs.popitem(last=False)
                self._ratings.pop(forgotten, None)

    def take(self, session: str | None, prompt: str, *, tuned: str, base: str) -> GeneratedPair:
        """The session's pair with this prompt and these answers, removed (one rating)."""
        key = session or ""
        with self._lock:
            pairs = self._pairs.get(key, [])
            for pair in pairs:
                same = (pair.prompt, pair.tuned, pair.base) == (prompt.strip(), tuned, base)
                if same and not self._expired(pair):
                    pairs.remove(pair)
                    return pair
        raise UserError(
            "rate: this Space did not generate these answers for you (or they are rated "
            f"already, or older than {self.seconds / 60:.0f} minutes): compare the prompt "
            "first, then rate that pair"
        )

    def count_rating(self, session: str | None, cap: int) -> None:
        """Count one rating of ``session``; refused past ``cap``."""
        key = session or ""
        with self._lock:
            if self._ratings.get(key, 0) >= cap:
                raise UserError(f"rate: {cap} ratings from one session is this Space's cap")
            self._ratings[key] = self._ratings.get(key, 0) + 1

    def _expired(self, pair: GeneratedPair) -> bool:
        return time.monotonic() - pair.created > self.seconds


def scrubbed(text: str) -> str:
    """``text`` with e-mails, phones, IDs, cards … as typed placeholders (data prepare's).

    Example:
        >>> scrubbed("mail me at ann@example.org")
        'mail me at [EMAIL]'
    """
    from ft_plugin.data.cleaning.pii import scrub_pii

    return scrub_pii(text)[0]


def new_record(
    *,
    adapter: str,
    prompt: str,
    answers: dict[str, str],
    scores: dict[str, int],
    preference: str,
    tuned: str,
    source: str,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One unblinded rating line: which slot was the tuned model, and which one won.

    Example:
        >>> r = new_record(adapter="x", prompt="q", answers={"answer_a": "1", "answer_b": "2"},
        ...                scores={"relevance": 4}, preference="a", tuned="a", source="api")
        >>> r["a"], r["b"], r["preferred"]
        ('tuned', 'base', 'tuned')
    """
    order = {"a": "tuned", "b": "base"} if tuned == "a" else {"a": "base", "b": "tuned"}
    record = {
        "id": uuid.uuid4().hex,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "adapter": adapter,
        "prompt": prompt,
        **answers,
        "a": order["a"],
        "b": order["b"],
        **scores,
        "preference": preference,
        "preferred": order.get(preference, "tie"),
        "source": source,
    }
    if settings:
        record["settings"] = settings
    return record


def checked_scores(scores: dict[str, Any]) -> dict[str, int]:
    """The rating's scores: the three overall ones (relevance, accuracy, readability: the
    signature of the `rate` endpoint) and/or all six per-answer ones (relevance_a, …).

    Either set may be absent (None); a set that is given must be complete and 1-5.

    Example:
        >>> checked_scores({"relevance": 4, "accuracy": "3", "readability": 5.0, "relevance_a": None})
        {'relevance': 4, 'accuracy': 3, 'readability': 5}
    """
    given = {name: value for name, value in scores.items() if value is not None and value != ""}
    checked: dict[str, int] = {}
    for names in (CRITERIA, SCORE_FIELDS):
        if any(name in given for name in names):
            checked.update({name: _score(name, given.get(name)) for name in names})
    if not checked:
        raise UserError("scores: give relevance, accuracy and readability (1-5)")
    return checked


def _score(name: str, value: Any) -> int:
    """A rating score: an integer 1-5 (4.0 is accepted as 4; 0, 6, 3.5 are refused)."""
    if isinstance(value, bool) or value is None:
        raise UserError(f"{name}: give a score from 1 to 5")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}: expected an integer score from 1 to 5, got {value!r}") from None
    if not number.is_integer() or not 1 <= number <= 5:
        raise UserError(f"{name}: expected an integer score from 1 to 5, got {value!r}")
    return int(number)


def hub_failure_reason(exc: BaseException) -> str:
    """Why a Hub call failed, in words a Space owner can act on; never the request headers."""
    from ft_plugin.hub.calls import hub_reason

    return hub_reason(exc)


def summary_markdown(summary: dict[str, Any]) -> str:
    """The Rate tab's table of mean scores per model and the preference shares."""
    if not summary["ratings"]:
        return "No ratings yet."
    lines = [f"**{summary['ratings']} rating(s) so far.**", ""]
    lines += ["| criterion | base (mean, n) | tuned (mean, n) |", "|---|---|---|"]
    for criterion in CRITERIA:
        cells = []
        for model in ("base", "tuned"):
            s = summary["scores"][model][criterion]
            cells.append("–" if s["mean"] is None else f"{s['mean']:.2f} ({s['n']})")
        lines.append(f"| {criterion} | " + " | ".join(cells) + " |")
    shares = summary["preference"]
    preferred = ", ".join(f"{k} {shares[k]:.0%}" for k in ("tuned", "base", "tie"))
    pairs = summary["pairs"]
    dropped = ", ".join(f"{n} {why}" for why, n in pairs["dropped"].items())
    usable = (f"Preference pairs for DPO: {pairs['pairs_out']} usable"
              + (f" ({dropped} left out)" if dropped else ""))  # fmt: skip
    return "\n".join([*lines, "", "Preferred: " + preferred, "", usable])


def with_push_notice(rating: Any, text: str) -> str:
    """``text`` under a warning when ratings cannot be pushed to the Hub dataset
    (``rating.push_error``: a :class:`RatingsStore` or the Space's rating service)."""
    notice = f"**Warning:** {rating.push_error}\n\n" if rating.push_error else ""
    return notice + text
