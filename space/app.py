"""The ft-plugin Gradio Space: compare, evaluate, rate and document a fine-tuned model.

Runs as is on a Hugging Face Space (``app_file: app.py``) and locally through
``ft-plugin space TARGET`` or ``python space/app.py``. As a script it reads the adapter
id(s) from ``$FT_PLUGIN_ADAPTER`` (comma list), else from ``config.yaml`` next to this
file (``adapter:`` or ``adapters:``, ``data_dir:``, ``ratings_dataset:``).

Tabs: **Compare** (base and tuned answers side by side, with latency and tokens/s),
**Evaluate** (ft-plugin's evaluation of an uploaded file or the template's sample, base
vs tuned, with plots and a downloadable report), **Rate** (blind A/B rating appended to
``DATA_DIR/ratings.jsonl``), **Model card**.

Named API endpoints (``gradio_client.Client(url).view_api()``):

- ``/compare`` (prompt, max_new_tokens=128, temperature=0.0, top_p=1.0, adapter="")
  -> (base_answer, tuned_answer); temperature 0 is greedy decoding.
- ``/rate`` (prompt, answer_a, answer_b, relevance_a, accuracy_a, readability_a,
  relevance_b, accuracy_b, readability_b, preference, tuned="b", adapter="") -> str;
  scores are integers 1-5, preference is "a", "b" or "tie"; the caller is not blind, so
  ``tuned`` says which answer came from the tuned model (by default answer_b is the tuned
  answer and answer_a the base one).
- ``/evaluate`` (file) -> the evaluation report as JSON (``models.target``,
  ``models.baseline``, ``delta``, ``data``, ``settings``).

Limits (:class:`Limits`) keep a public Space alive: prompt length, a max_new_tokens cap
(requests above it are clamped to it, with a warning), a per-answer generation time
limit (``generate(max_time=...)``), one model job at a time behind a bounded queue,
capped evaluation rows and upload size. Models load from safetensors only and never run
remote code. Errors reach users as one-line messages, never as tracebacks.

No ``from __future__ import annotations`` here: ``gr.api`` reads the real type hints of
the endpoint functions.
"""

import contextlib
import dataclasses
import functools
import json
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
from huggingface_hub import CommitScheduler, snapshot_download

from ft_plugin.errors import UserError

try:  # POSIX advisory lock on the ratings file, on top of the in-process lock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOG = logging.getLogger("ft_plugin.space")
APP_DIR = Path(__file__).resolve().parent
CRITERIA = ("relevance", "accuracy", "readability")
SCORE_FIELDS = tuple(f"{c}_{slot}" for slot in ("a", "b") for c in CRITERIA)
PREFERENCES = ("a", "b", "tie")
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
# What a Hub adapter repo may bring down: configs, safetensors weights, cards, plots.
# Pickled weights (*.bin, *.pt, *.pth, *.pkl) and code (*.py) are never downloaded.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.yaml", "*.md", "*.txt", "*.jinja", "*.model",
                "eval/*.png"]  # fmt: skip
RATINGS_FILE = "ratings.jsonl"
CSS = """
.answer textarea { font-size: 0.95rem; }
.stats { opacity: 0.8; font-size: 0.85rem; }
"""


@dataclass(frozen=True)
class Limits:
    """What one request may ask of a public Space (all overridable)."""

    max_prompt_chars: int = 2000
    max_new_tokens: int = 256  # cap: larger requests are clamped to it
    default_new_tokens: int = 128
    max_time_s: float = 30.0  # per answer, passed to generate(max_time=...)
    max_temperature: float = 2.0
    concurrency: int = 1  # model jobs at a time (compare, evaluate share one queue slot)
    max_queue: int = 16  # waiting requests before "queue full"
    max_eval_rows: int = 50
    eval_max_new_tokens: int = 64
    max_upload_mb: int = 5
    max_answer_chars: int = 8000  # answers sent to /rate
    ratings_push_minutes: float = 5.0  # CommitScheduler period, with ratings_dataset


@dataclass
class AdapterInfo:
    """One fine-tuned model the Space serves."""

    label: str  # shown to users and used as the API's adapter name
    peft_name: str | None  # the adapter's name inside the PeftModel (None: full weights)
    source: str  # what the user gave: a run directory or a Hub repo id
    run_dir: Path
    recipe: Any
    adapter_bytes: int
    template: Any | None  # ft_plugin.data.templates.Template

    @property
    def base_hub_id(self) -> str:
        from ft_plugin.models import EMBEDDED_MODELS, EMBEDDED_PREFIX

        base = self.recipe.base_model
        if base.startswith(EMBEDDED_PREFIX):
            spec = EMBEDDED_MODELS.get(base[len(EMBEDDED_PREFIX) :])
            return spec.hub_id if spec else base
        return base


@dataclass
class Answer:
    """One generated answer and how long it took."""

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


@dataclass
class Comparison:
    prompt: str
    adapter: str
    base: Answer
    tuned: Answer
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # e.g. "max_new_tokens clamped"


@dataclass
class EvalOutcome:
    report: dict[str, Any]  # EvalReport.to_dict(), sources named by file name only
    folder: Path  # report.json, report.md, *.png
    archive: Path  # the folder as a zip, for download
    plots: list[Path]

    def table(self) -> list[list[Any]]:
        """Rows ``[metric, base, tuned, delta]`` for every metric either model has."""
        models = self.report["models"]
        target, base = models.get("target", {}), models.get("baseline", {})
        names = list(dict.fromkeys([*target, *base]))
        return [[n, base.get(n), target.get(n), self.report["delta"].get(n)] for n in names]


# --------------------------------------------------------------------------- generation


def generate_answer(
    model: Any,
    tokenizer: Any,
    messages: list[dict[str, str]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_time: float | None = None,
) -> Answer:
    """One chat answer, timed from prompt to last token.

    ``temperature`` 0 decodes greedily; above 0 it samples with ``top_p``. ``max_time``
    (seconds) stops generation early (transformers' ``MaxTimeCriteria``).
    """
    import torch

    device = next(model.parameters()).device
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(device)
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
    started = time.perf_counter()
    with torch.inference_mode():
        ids = model.generate(**inputs, **kwargs)
    elapsed = time.perf_counter() - started
    new = ids[0, inputs["input_ids"].shape[1] :]
    count = int(new.numel())
    ended = count > 0 and int(new[-1]) == tokenizer.eos_token_id
    return Answer(
        text=tokenizer.decode(new, skip_special_tokens=True).strip(),
        latency_ms=round(elapsed * 1000, 1),
        new_tokens=count,
        tokens_per_second=round(count / elapsed, 2) if elapsed > 0 else 0.0,
        hit_time_limit=bool(
            max_time is not None and elapsed >= max_time and count < max_new_tokens and not ended
        ),
    )


# --------------------------------------------------------------------------- loading


def resolve_target(target: str, *, cache_dir: Path) -> tuple[Path, bool]:
    """A local run directory, or a Hub repo id downloaded with ``snapshot_download``.

    Returns the folder and whether it came from the Hub. Only configs, cards and
    safetensors weights are downloaded (no pickles, no code); ``HF_HUB_OFFLINE`` and the
    Hub cache are honoured. A Hub run trained on ft-plugin's embedded base model names
    the model by its Hub id instead when the embedded package is not installed (as on a
    Space), in a patched copy under ``cache_dir``.
    """
    local = Path(target).expanduser()
    if local.exists():
        if not (local / "recipe.yaml").is_file():
            raise UserError(
                f"{target}: not a run directory (no recipe.yaml); the Space compares a "
                "fine-tuned run with its base model"
            )
        return local, False
    if target.startswith((".", "/", "~")) or target.count("/") != 1:
        raise UserError(f"{target}: no such run directory, and not a Hub repo id (OWNER/NAME)")
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(target, allow_patterns=HUB_PATTERNS))
    except LocalEntryNotFoundError:
        raise UserError(
            f"{target}: not a local folder and not in the Hub cache, and the Hub is offline "
            "or unreachable (HF_HUB_OFFLINE)"
        ) from None
    except HfHubHTTPError as exc:  # never echo the exception: it may carry headers
        status = exc.response.status_code if exc.response is not None else "?"
        raise UserError(f"{target}: cannot download from the Hub (HTTP {status})") from None
    if not (folder / "recipe.yaml").is_file():
        raise UserError(
            f"{target}: the Hub repo has no recipe.yaml; publish runs with `ft-plugin push`"
        )
    return _with_reachable_base(folder, target, cache_dir), True


def _with_reachable_base(folder: Path, target: str, cache_dir: Path) -> Path:
    from importlib import metadata

    from ft_plugin.models import EMBEDDED_MODELS, EMBEDDED_PREFIX

    text = (folder / "recipe.yaml").read_text(encoding="utf-8")
    match = re.search(rf"^base_model:\s*['\"]?{EMBEDDED_PREFIX}([\w.-]+)", text, re.M)
    if not match or match.group(1) not in EMBEDDED_MODELS:
        return folder
    spec = EMBEDDED_MODELS[match.group(1)]
    try:
        metadata.distribution(spec.distribution)
        return folder  # the embedded weights are installed: use them, offline
    except metadata.PackageNotFoundError:
        pass
    copy = cache_dir / "adapters" / target.replace("/", "--")
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(folder, copy, symlinks=False)
    patched = re.sub(r"^base_model:.*$", f"base_model: {spec.hub_id}", text, count=1, flags=re.M)
    (copy / "recipe.yaml").write_text(patched, encoding="utf-8")
    return copy


def _template_of(recipe: Any) -> Any | None:
    from ft_plugin.data.formats import CONVERTERS
    from ft_plugin.data.templates import load_template

    kind = recipe.datasets[0].type if recipe.datasets else None
    return load_template(kind) if kind and kind not in CONVERTERS else None


def _labels(targets: Sequence[str]) -> list[str]:
    labels: list[str] = []
    for target in targets:
        local = Path(target).expanduser()
        label = local.resolve().name if local.exists() else target
        candidate, n = label, 2
        while candidate in labels:
            candidate, n = f"{label}-{n}", n + 1
        labels.append(candidate)
    return labels


def _peft_type(folder: Path) -> str:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    return str(config.get("peft_type", "unknown"))


def _check_safe(folder: Path, recipe: Any, target: str) -> None:
    if recipe.trust_remote_code:
        raise UserError(
            f"{target}: the recipe sets trust_remote_code: true; the Space never runs code "
            "from a model repo"
        )
    from ft_plugin import registry

    if registry.load_method(recipe.adapter).uses_peft:
        if not (folder / "adapter_model.safetensors").is_file():
            raise UserError(f"{target}: no adapter_model.safetensors (safetensors only)")
    elif not list(folder.glob("model*.safetensors")):
        raise UserError(f"{target}: no model.safetensors (safetensors only)")


# --------------------------------------------------------------------------- the service


class SpaceState:
    """Everything the Space does, without Gradio: load once, compare, rate, evaluate.

    One copy of the base weights serves every answer: adapters are named adapters of one
    ``PeftModel`` (``load_adapter``/``set_adapter``) and base answers come from the same
    model with the adapter disabled. A lock serialises model use across events.
    """

    def __init__(
        self,
        loaded: Any,
        adapters: list[AdapterInfo],
        *,
        data_dir: Path,
        limits: Limits | None = None,
        ratings_dataset: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.loaded = loaded
        self.adapters = {a.label: a for a in adapters}
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or Limits()
        self.ratings_path = self.data_dir / RATINGS_FILE
        self.rng = rng or random.SystemRandom()
        self._model_lock = threading.RLock()
        self._ratings_lock: Any = threading.Lock()
        self._work = Path(tempfile.mkdtemp(prefix="ft-plugin-space-"))  # reports, plots
        weakref.finalize(self, shutil.rmtree, self._work, True)
        self.scheduler = None
        self.ratings_push_error: str | None = None  # why ratings stay local, shown in the UI
        if ratings_dataset:
            self._start_ratings_push(ratings_dataset)

    @classmethod
    def load(
        cls,
        targets: str | Sequence[str],
        *,
        data_dir: Path,
        limits: Limits | None = None,
        ratings_dataset: str | None = None,
        rng: random.Random | None = None,
    ) -> "SpaceState":
        """Load one run (or several adapters of one base model) from paths or Hub ids."""
        from ft_plugin import registry
        from ft_plugin.config import load_recipe
        from ft_plugin.evaluate.targets import load_target

        targets = [targets] if isinstance(targets, str) else [t for t in targets if t]
        if not targets:
            raise UserError("no adapter to serve: give a run directory or a Hub adapter id")
        data_dir = Path(data_dir)
        resolved = []
        for target in targets:
            folder, _ = resolve_target(target, cache_dir=data_dir / "cache")
            recipe = load_recipe(str(folder / "recipe.yaml")).recipe
            _check_safe(folder, recipe, target)
            resolved.append((target, folder, recipe))
        first_target, first_folder, first = resolved[0]
        if len(resolved) > 1:
            for target, _, recipe in resolved:
                if not registry.load_method(recipe.adapter).uses_peft:
                    raise UserError(
                        f"{target}: a {recipe.adapter} run has full weights; several models "
                        "in one Space must be PEFT adapters of one base model"
                    )
                same = (recipe.base_model, recipe.base_model_revision) == (
                    first.base_model,
                    first.base_model_revision,
                )
                if not same:
                    raise UserError(
                        f"{target}: trained on {recipe.base_model}, but {first_target} on "
                        f"{first.base_model}; adapters in one Space must share the base model"
                    )
            kinds = {_peft_type(folder) for _, folder, _ in resolved}
            if len(kinds) > 1:
                raise UserError(
                    f"adapters of different PEFT types ({', '.join(sorted(kinds))}) cannot "
                    "share one model; serve them in separate Spaces"
                )
        loaded = load_target(str(first_folder), with_baseline=True)
        if loaded.baseline is None:
            raise UserError(f"{first_target}: no base model to compare with")
        uses_peft = registry.load_method(first.adapter).uses_peft
        infos = []
        for i, ((target, folder, recipe), label) in enumerate(
            zip(resolved, _labels(targets), strict=True)
        ):
            peft_name = None
            if uses_peft:
                peft_name = "default" if i == 0 else f"adapter_{i}"
                if i > 0:
                    if recipe.adapter == "bottleneck":
                        import ft_plugin.methods.bottleneck  # noqa: F401  (PEFT registration)
                    loaded.model.load_adapter(str(folder), adapter_name=peft_name)
            pattern = "adapter_model.safetensors" if uses_peft else "model*.safetensors"
            size = sum(p.stat().st_size for p in folder.glob(pattern))
            infos.append(
                AdapterInfo(label, peft_name, target, folder, recipe, size, _template_of(recipe))
            )
        if uses_peft:
            loaded.model.set_adapter("default")
        loaded.model.eval()
        return cls(
            loaded, infos, data_dir=data_dir, limits=limits,
            ratings_dataset=ratings_dataset, rng=rng,
        )  # fmt: skip

    # ----------------------------------------------------------------- helpers

    @property
    def adapter_labels(self) -> list[str]:
        return list(self.adapters)

    def adapter(self, label: str | None = None) -> AdapterInfo:
        if not label:
            return next(iter(self.adapters.values()))
        if label not in self.adapters:
            raise UserError(f"adapter {label!r}: not loaded; choose one of {self.adapter_labels}")
        return self.adapters[label]

    def example_prompts(self, label: str | None = None) -> list[str]:
        template = self.adapter(label).template
        if template and template.examples:
            return list(template.examples)
        return ["Explain what fine-tuning a language model means, in two sentences."]

    def disclaimer(self, label: str | None = None) -> str | None:
        template = self.adapter(label).template
        return template.disclaimer.strip() if template and template.disclaimer else None

    def messages(self, prompt: str, label: str | None = None) -> list[dict[str, str]]:
        """The chat the model sees: the run's template system prompt, then the user."""
        template = self.adapter(label).template
        messages = []
        if template and template.system_prompt:
            messages.append({"role": "system", "content": template.system_prompt.strip()})
        return [*messages, {"role": "user", "content": prompt}]

    @contextlib.contextmanager
    def _using(self, label: str | None) -> Iterator[AdapterInfo]:
        info = self.adapter(label)
        with self._model_lock:
            if info.peft_name is not None:
                self.loaded.model.set_adapter(info.peft_name)
            yield info

    def check_prompt(self, prompt: Any) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("prompt: write a question first")
        if len(prompt) > self.limits.max_prompt_chars:
            raise UserError(
                f"prompt: {len(prompt):,} characters is too long; the limit is "
                f"{self.limits.max_prompt_chars:,} characters"
            )
        return prompt.strip()

    def generation_settings(
        self, max_new_tokens: Any, temperature: Any, top_p: Any
    ) -> tuple[dict[str, Any], list[str]]:
        """Checked settings and notes; max_new_tokens above the cap is clamped to it."""
        notes = []
        limits = self.limits
        try:
            tokens = (
                int(max_new_tokens) if max_new_tokens is not None else limits.default_new_tokens
            )
            temperature = float(temperature or 0.0)
            top_p = float(1.0 if top_p is None else top_p)
        except (TypeError, ValueError):
            raise UserError("max_new_tokens, temperature, top_p: expected numbers") from None
        if tokens < 1:
            raise UserError(f"max_new_tokens: {tokens} must be at least 1")
        if tokens > limits.max_new_tokens:
            notes.append(
                f"max_new_tokens {tokens} is above this Space's cap; clamped to "
                f"{limits.max_new_tokens}"
            )
            tokens = limits.max_new_tokens
        if not 0.0 <= temperature <= limits.max_temperature:
            raise UserError(f"temperature: {temperature} is outside 0-{limits.max_temperature}")
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"top_p: {top_p} is outside (0, 1]")
        settings = {"max_new_tokens": tokens, "temperature": temperature, "top_p": top_p,
                    "max_time": limits.max_time_s}  # fmt: skip
        return settings, notes

    # ----------------------------------------------------------------- compare

    def compare(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        adapter: str | None = None,
    ) -> Comparison:
        """The base model's and the tuned model's answers to one prompt."""
        prompt = self.check_prompt(prompt)
        settings, notes = self.generation_settings(max_new_tokens, temperature, top_p)
        with self._using(adapter) as info:
            messages = self.messages(prompt, info.label)
            tokenizer = self.loaded.tokenizer
            tuned = generate_answer(self.loaded.model, tokenizer, messages, **settings)
            with self.loaded.baseline() as base_model:
                base = generate_answer(base_model, tokenizer, messages, **settings)
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

    # ----------------------------------------------------------------- rate

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
        settings: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check one rating and append it to ratings.jsonl as one JSON line (unblinded)."""
        prompt = self.check_prompt(prompt)
        for name, answer in (("answer_a", answer_a), ("answer_b", answer_b)):
            if not isinstance(answer, str):
                raise UserError(f"{name}: expected text")
            if len(answer) > self.limits.max_answer_chars:
                raise UserError(f"{name}: longer than {self.limits.max_answer_chars:,} characters")
        checked = _checked_scores(scores)
        choice = str(preference or "").strip().lower()
        if choice not in PREFERENCES:
            raise UserError(f"preference: expected a, b or tie, got {preference!r}")
        tuned = str(tuned or "").strip().lower()
        if tuned not in ("a", "b"):
            raise UserError(
                f"tuned: expected a or b (which answer is the tuned one), got {tuned!r}"
            )
        order = {"a": "tuned", "b": "base"} if tuned == "a" else {"a": "base", "b": "tuned"}
        record = {
            "id": uuid.uuid4().hex,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "adapter": self.adapter(adapter).label,
            "prompt": prompt,
            "answer_a": answer_a,
            "answer_b": answer_b,
            "a": order["a"],
            "b": order["b"],
            **checked,
            "preference": choice,
            "preferred": order.get(choice, "tie"),
            "source": source,
        }
        if settings:
            record["settings"] = settings
        self._append(record)
        return record

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._ratings_lock, self.ratings_path.open("a", encoding="utf-8") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released on close
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def _start_ratings_push(self, repo_id: str) -> None:
        """Commit ratings.jsonl to a Hub dataset every few minutes (and at exit).

        A failure to start keeps the Space working with ratings on its own disk, and says
        so, with the reason, in the log and on the Rate tab (never the token).
        """
        try:
            self.scheduler = CommitScheduler(
                repo_id=repo_id, repo_type="dataset", folder_path=self.data_dir,
                allow_patterns=[RATINGS_FILE], every=self.limits.ratings_push_minutes,
                private=True,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any failure leaves ratings local, said loudly
            self.ratings_push_error = (
                f"ratings are kept in {self.ratings_path} only, not pushed to the Hub dataset "
                f"{repo_id}: {_hub_failure_reason(exc)}"
            )
            LOG.error("%s", self.ratings_push_error)
            return
        self._ratings_lock = self.scheduler.lock  # no commit reads half a line

    def read_ratings(self) -> list[dict[str, Any]]:
        if not self.ratings_path.is_file():
            return []
        records = []
        for number, line in enumerate(self.ratings_path.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                LOG.warning("%s:%d: not JSON, skipped", self.ratings_path, number)
        return records

    def ratings_summary(self) -> dict[str, Any]:
        """Counts, mean scores per model (with 95% intervals) and preference shares."""
        from ft_plugin.evaluate.human import ScoreStats

        records = self.read_ratings()
        values: dict[tuple[str, str], list[int]] = {}
        for r in records:
            for slot in ("a", "b"):
                for criterion in CRITERIA:
                    score = r.get(f"{criterion}_{slot}")
                    if isinstance(score, int) and r.get(slot) in ("base", "tuned"):
                        values.setdefault((r[slot], criterion), []).append(score)
        scores = {}
        for model in ("base", "tuned"):
            scores[model] = {}
            for criterion in CRITERIA:
                s = ScoreStats.of(values.get((model, criterion), []))
                scores[model][criterion] = {"mean": s.mean, "ci95": s.ci95, "n": s.n}
        overall = {}
        for criterion in CRITERIA:
            s = ScoreStats.of([r[criterion] for r in records if isinstance(r.get(criterion), int)])
            overall[criterion] = {"mean": s.mean, "ci95": s.ci95, "n": s.n}
        preferred = [r.get("preferred") for r in records if r.get("preferred")]
        counts = {k: preferred.count(k) for k in ("tuned", "base", "tie")}
        shares = {k: (c / len(preferred) if preferred else 0.0) for k, c in counts.items()}
        return {"ratings": len(records), "scores": scores, "overall": overall,
                "preference": shares, "preference_counts": counts}  # fmt: skip

    # ----------------------------------------------------------------- evaluate

    def evaluate(
        self,
        data_path: str | None = None,
        *,
        use_sample: bool = False,
        max_rows: int | None = None,
        adapter: str | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> EvalOutcome:
        """ft-plugin's evaluation (base vs tuned) of an uploaded file or the sample data."""
        from ft_plugin.evaluate.report import write_eval_report
        from ft_plugin.evaluate.runner import EvalSettings, evaluate_loaded

        report_progress = progress or (lambda fraction, message: None)
        info = self.adapter(adapter)
        if use_sample:
            from ft_plugin.data.reading import builtin_sample_path

            if info.template is None:
                raise UserError(
                    f"{info.label} was trained without a domain template, so there is no "
                    "sample data: upload a file"
                )
            builtin_sample_path(info.template.name)  # a clear error when absent
            data, shown = f"builtin:{info.template.name}", f"builtin:{info.template.name}"
        else:
            if not data_path:
                raise UserError("data: upload a JSONL or CSV file, or choose the sample data")
            path = Path(data_path)
            if path.suffix.lower() not in DATA_SUFFIXES:
                raise UserError(f"{path.name}: expected one of {', '.join(DATA_SUFFIXES)}")
            size_mb = path.stat().st_size / 2**20
            if size_mb > self.limits.max_upload_mb:
                raise UserError(
                    f"{path.name}: {size_mb:.1f} MB is over the {self.limits.max_upload_mb} MB limit"
                )
            data, shown = str(path), path.name
        rows = self.limits.max_eval_rows if not max_rows else int(max_rows)
        rows = max(1, min(rows, self.limits.max_eval_rows))
        settings = EvalSettings(
            data=data, baseline=True, max_samples=rows,
            max_new_tokens=self.limits.eval_max_new_tokens, latency_samples=min(8, rows),
        )  # fmt: skip
        report_progress(0.1, f"Evaluating {info.label} and its base model on {shown}")
        with self._using(info.label):
            target = dataclasses.replace(
                self.loaded, name=info.label, recipe=info.recipe, run_dir=info.run_dir,
                adapter_bytes=info.adapter_bytes,
            )  # fmt: skip
            report, results, eval_data = evaluate_loaded(target, settings)
        report_progress(0.9, "Writing the report")
        report_dict = report.to_dict()
        report_dict["data"]["source"] = shown  # not the server's upload path
        report_dict["settings"]["data"] = shown
        folder = Path(tempfile.mkdtemp(prefix="eval-", dir=self._work)) / "report"
        write_eval_report(report_dict, folder, results=results, labels=eval_data.labels,
                          trainer_state=None)  # fmt: skip
        archive = Path(shutil.make_archive(str(folder.parent / "evaluation-report"), "zip", folder))
        self._prune(prefix="eval-", keep=8)
        return EvalOutcome(report_dict, folder, archive, sorted(folder.glob("*.png")))

    def _prune(self, *, prefix: str, keep: int) -> None:
        old = sorted(self._work.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime)[:-keep]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    # ----------------------------------------------------------------- card

    def card_markdown(self, adapter: str | None = None) -> str:
        """The run's model card (README.md), or one built from the run directory."""
        from huggingface_hub import ModelCard

        info = self.adapter(adapter)
        readme = info.run_dir / "README.md"
        try:
            if readme.is_file():
                card = ModelCard.load(readme)
                # ft-plugin's card (pushed runs); PEFT's blank template otherwise
                if "ft-plugin" in (card.data.tags or []):
                    return card.text
            from ft_plugin.hub.card import RunInfo, build_card

            return build_card(RunInfo(info.run_dir, info.label, info.base_hub_id)).text
        except Exception as exc:  # noqa: BLE001 - a card is documentation: never fail the tab
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            LOG.warning(
                "model card of %s could not be built (%s); showing a short one", info.label, reason
            )
            return (
                f"# {info.label}\n\n**{info.recipe.adapter}** fine-tuning of "
                f"`{info.base_hub_id}`. The model card could not be built ({reason}); "
                "training metrics below."
            )

    def training_metrics(self, adapter: str | None = None) -> dict[str, Any]:
        path = self.adapter(adapter).run_dir / "metrics.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def training_curves(self, adapter: str | None = None) -> Path | None:
        from ft_plugin.evaluate.report import plot_training_curves

        info = self.adapter(adapter)
        state = info.run_dir / "trainer_state.json"
        if not state.is_file():
            shipped = info.run_dir / "eval" / "training_curves.png"
            return shipped if shipped.is_file() else None
        out = self._work / f"curves-{info.peft_name or 'model'}.png"
        try:
            return plot_training_curves(state, out)
        except (OSError, ValueError, KeyError):
            return None


def _checked_scores(scores: dict[str, Any]) -> dict[str, int]:
    """The rating's scores: the three overall ones (relevance, accuracy, readability: the
    signature of the `rate` endpoint) and/or all six per-answer ones (relevance_a, …).

    Either set may be absent (None); a set that is given must be complete and 1-5.
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


def _hub_failure_reason(exc: BaseException) -> str:
    """Why a Hub call failed, in words a Space owner can act on; never the request headers."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    reasons = {401: "not authorised (set HF_TOKEN to a token with write access in the Space's secrets)",
               403: "forbidden (the token cannot write to this dataset)",
               404: "not found (or no access with this token)"}  # fmt: skip
    if status is not None:
        return reasons.get(status, f"Hub error {status}")
    return f"{type(exc).__name__} (is the Hub reachable? is HF_HUB_OFFLINE set?)"


def summary_markdown(summary: dict[str, Any]) -> str:
    if not summary["ratings"]:
        return "No ratings yet."
    lines = [f"**{summary['ratings']} rating(s) so far.**", "",
             "| criterion | base (mean, n) | tuned (mean, n) |", "|---|---|---|"]  # fmt: skip
    for criterion in CRITERIA:
        cells = []
        for model in ("base", "tuned"):
            s = summary["scores"][model][criterion]
            cells.append("–" if s["mean"] is None else f"{s['mean']:.2f} ({s['n']})")
        lines.append(f"| {criterion} | " + " | ".join(cells) + " |")
    shares = summary["preference"]
    lines += [
        "",
        "Preferred: " + ", ".join(f"{k} {shares[k]:.0%}" for k in ("tuned", "base", "tie")),
    ]
    return "\n".join(lines)


def _with_push_notice(state: SpaceState, text: str) -> str:
    notice = f"**Warning:** {state.ratings_push_error}\n\n" if state.ratings_push_error else ""
    return notice + text


# --------------------------------------------------------------------------- Gradio layer


def shown_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors become a one-line gr.Error; anything else a generic message (logged)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception:
            LOG.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(
                "Something went wrong on the server; the details are in its log.",
                print_exception=False,
            ) from None

    return wrapper


def launch_kwargs(limits: Limits | None = None) -> dict[str, Any]:
    """``launch()`` settings the app expects (theme and css moved to launch in Gradio 6)."""
    limits = limits or Limits()
    return {"show_error": False, "max_file_size": f"{limits.max_upload_mb}mb",
            "theme": gr.themes.Soft(), "css": CSS, "ssr_mode": False}  # fmt: skip


def build_blocks(state: SpaceState) -> gr.Blocks:
    """The Gradio layout over a loaded :class:`SpaceState` (queue configured)."""
    limits = state.limits
    first = state.adapter()
    model_job = {"concurrency_id": "model", "concurrency_limit": limits.concurrency}
    with gr.Blocks(title=f"ft-plugin · {first.label}") as demo:
        gr.Markdown(
            f"# {first.label}\n**{first.recipe.adapter}** fine-tuning of `{first.base_hub_id}`"
            " with [ft-plugin](https://pypi.org/project/ft-plugin/): the base model and the "
            "tuned one answer side by side."
        )
        if state.disclaimer():
            gr.Markdown(f"> ⚠️ {state.disclaimer()}")
        adapter = gr.Dropdown(
            state.adapter_labels, value=first.label, label="Adapter",
            visible=len(state.adapters) > 1, elem_id="adapter",
        )  # fmt: skip
        pair = gr.State(None)  # the blind pair and its key: server-side only

        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                prompt = gr.Textbox(
                    label="Prompt", lines=3, max_length=limits.max_prompt_chars,
                    placeholder="Ask a question…", elem_id="compare-prompt",
                )  # fmt: skip
                gr.Examples(state.example_prompts(), inputs=[prompt], label="Example prompts")
                with gr.Accordion("Generation settings", open=False):
                    max_new = gr.Slider(1, limits.max_new_tokens, limits.default_new_tokens,
                                        step=1, label="Max new tokens")  # fmt: skip
                    temperature = gr.Slider(0.0, limits.max_temperature, 0.0, step=0.05,
                                            label="Temperature (0 = greedy)")  # fmt: skip
                    top_p = gr.Slider(0.05, 1.0, 1.0, step=0.05, label="Top-p")
                compare_btn = gr.Button("Compare", variant="primary", elem_id="compare-button")
                with gr.Row():
                    with gr.Column():
                        base_out = gr.Textbox(label="Base model", lines=8, interactive=False,
                                              elem_id="base-answer", elem_classes="answer")  # fmt: skip
                        base_stats = gr.Markdown(elem_classes="stats", elem_id="base-stats")
                    with gr.Column():
                        tuned_out = gr.Textbox(label="Tuned model", lines=8, interactive=False,
                                               elem_id="tuned-answer", elem_classes="answer")  # fmt: skip
                        tuned_stats = gr.Markdown(elem_classes="stats", elem_id="tuned-stats")

            with gr.Tab("Evaluate", id="evaluate"):
                gr.Markdown(
                    "Upload rows (JSONL, JSON, CSV, TSV or Parquet, in the shape of the run's "
                    f"template) or use the template's sample; at most {limits.max_eval_rows} "
                    "rows are evaluated, base vs tuned, with ft-plugin's metrics."
                )
                with gr.Row():
                    eval_file = gr.File(label="Data file", file_types=list(DATA_SUFFIXES),
                                        elem_id="eval-file")  # fmt: skip
                    with gr.Column():
                        has_sample = first.template is not None
                        eval_source = gr.Radio(
                            ["uploaded file", "template sample"],
                            value="template sample" if has_sample else "uploaded file",
                            label="Data", interactive=has_sample,
                        )  # fmt: skip
                        eval_rows = gr.Slider(1, limits.max_eval_rows, limits.max_eval_rows,
                                              step=1, label="Rows")  # fmt: skip
                        eval_btn = gr.Button("Evaluate", variant="primary", elem_id="eval-button")
                eval_table = gr.Dataframe(headers=["metric", "base", "tuned", "delta"],
                                          label="Metrics", interactive=False)  # fmt: skip
                eval_plots = gr.Gallery(label="Plots", columns=3, height=320)
                eval_report = gr.File(label="Report (zip: report.json, report.md, plots)",
                                      interactive=False)  # fmt: skip

            with gr.Tab("Rate", id="rate"):
                gr.Markdown(
                    "Two answers to one prompt, in random order: which model wrote which is "
                    "not shown. Score each from 1 (poor) to 5 (excellent). The pair comes from "
                    "your last comparison, or draw a new one for the prompt below (blind)."
                )
                rate_prompt = gr.Textbox(label="Prompt", lines=2, elem_id="rate-prompt",
                                         max_length=limits.max_prompt_chars)  # fmt: skip
                new_pair_btn = gr.Button("New blind pair for this prompt", elem_id="new-pair")
                rate_fields = {}
                with gr.Row():
                    for slot in ("a", "b"):
                        with gr.Column():
                            answer_box = gr.Textbox(label=f"Answer {slot.upper()}", lines=8,
                                                    interactive=False, elem_id=f"rate-answer-{slot}")  # fmt: skip
                            rate_fields[f"answer_{slot}"] = answer_box
                            for criterion in CRITERIA:
                                rate_fields[f"{criterion}_{slot}"] = gr.Radio(
                                    [1, 2, 3, 4, 5], label=f"{criterion.capitalize()} of {slot.upper()}",
                                    elem_id=f"rate-{criterion}-{slot}",
                                )  # fmt: skip
                preference = gr.Radio(["A", "B", "Tie"], label="Which answer is better?",
                                      elem_id="rate-preference")  # fmt: skip
                rate_btn = gr.Button("Submit rating", variant="primary", elem_id="rate-button")
                rate_status = gr.Markdown(elem_id="rate-status")
                rate_summary = gr.Markdown(elem_id="rate-summary")

            with gr.Tab("Model card", id="card"):
                with gr.Row():
                    metrics_table = gr.Dataframe(headers=["metric", "value"],
                                                 label="Training metrics", interactive=False)  # fmt: skip
                    curves = gr.Image(label="Training curves", type="filepath", interactive=False)
                card_md = gr.Markdown(elem_id="model-card")

        # API-only components (hidden): /evaluate takes a real uploaded file, so that
        # Gradio checks it came through the upload route.
        with gr.Column(visible=False):
            api_file = gr.File(label="file", file_types=list(DATA_SUFFIXES))
            api_report = gr.JSON(label="report")
            api_evaluate_btn = gr.Button("evaluate")

        # ------------------------------------------------------------- handlers
        @shown_errors
        def ui_compare(text, tokens, temp, p, label):  # noqa: ANN001, ANN202
            result = state.compare(text, max_new_tokens=tokens, temperature=temp, top_p=p,
                                   adapter=label)  # fmt: skip
            for note in result.notes:
                gr.Warning(note)
            blind = state.blind_pair(result)
            return (result.base.text, result.base.stats(), result.tuned.text,
                    result.tuned.stats(), blind, blind["prompt"], blind["answer_a"],
                    blind["answer_b"], "")  # fmt: skip

        compare_outputs = [base_out, base_stats, tuned_out, tuned_stats, pair, rate_prompt,
                           rate_fields["answer_a"], rate_fields["answer_b"], rate_status]  # fmt: skip
        gr.on([compare_btn.click, prompt.submit], ui_compare,
              [prompt, max_new, temperature, top_p, adapter], compare_outputs,
              api_visibility="private", **model_job)  # fmt: skip

        @shown_errors
        def ui_new_pair(text, tokens, temp, p, label):  # noqa: ANN001, ANN202
            blind = state.blind_pair(
                state.compare(
                    text, max_new_tokens=tokens, temperature=temp, top_p=p, adapter=label
                )  # fmt: skip
            )
            return blind, blind["answer_a"], blind["answer_b"], ""

        new_pair_btn.click(ui_new_pair, [rate_prompt, max_new, temperature, top_p, adapter],
                           [pair, rate_fields["answer_a"], rate_fields["answer_b"], rate_status],
                           api_visibility="private", **model_job)  # fmt: skip

        score_inputs = [rate_fields[name] for name in SCORE_FIELDS]

        @shown_errors
        def ui_rate(current, *values):  # noqa: ANN001, ANN202
            if not current:
                raise UserError("no pair to rate: compare a prompt or draw a new blind pair")
            *scores, choice = values
            record = state.rate(
                prompt=current["prompt"], answer_a=current["answer_a"],
                answer_b=current["answer_b"], scores=dict(zip(SCORE_FIELDS, scores, strict=True)),
                preference=choice or "", tuned=current["tuned"], adapter=current["adapter"],
                source="ui", settings=current.get("settings"),
            )  # fmt: skip
            summary = state.ratings_summary()
            status = f"Rating saved ({summary['ratings']} so far). Thank you!"
            LOG.info("rating %s saved", record["id"])
            # one rating per pair: clear the pair, its answers and the scores
            # (distinct dicts: Gradio consumes each update it applies)
            cleared = [gr.update(value=None) for _ in range(len(score_inputs) + 1)]
            return (
                status,
                _with_push_notice(state, summary_markdown(summary)),
                None,
                "",
                "",
                *cleared,
            )

        rate_btn.click(ui_rate, [pair, *score_inputs, preference],
                       [rate_status, rate_summary, pair, rate_fields["answer_a"], rate_fields["answer_b"],
                        *score_inputs, preference], api_visibility="private")  # fmt: skip

        @shown_errors
        def ui_evaluate(upload, source, rows, label, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
            outcome = state.evaluate(
                upload, use_sample=source == "template sample", max_rows=rows, adapter=label,
                progress=lambda fraction, message: progress(fraction, desc=message),
            )  # fmt: skip
            return outcome.table(), [str(p) for p in outcome.plots], str(outcome.archive)

        eval_file.upload(lambda: "uploaded file", None, eval_source, api_visibility="private")
        eval_btn.click(ui_evaluate, [eval_file, eval_source, eval_rows, adapter],
                       [eval_table, eval_plots, eval_report], api_visibility="private",
                       **model_job)  # fmt: skip

        def ui_card(label):  # noqa: ANN001, ANN202
            info = state.adapter(label)
            metrics = [[k, v] for k, v in state.training_metrics(info.label).items()]
            curve = state.training_curves(info.label)
            source = gr.update(
                value="template sample" if info.template else "uploaded file",
                interactive=info.template is not None,
            )
            return state.card_markdown(info.label), metrics, str(curve) if curve else None, source

        card_outputs = [card_md, metrics_table, curves, eval_source]
        adapter.change(ui_card, [adapter], card_outputs, api_visibility="private")
        demo.load(ui_card, [adapter], card_outputs, api_visibility="private")
        demo.load(lambda: _with_push_notice(state, summary_markdown(state.ratings_summary())), None, [rate_summary],
                  api_visibility="private")  # fmt: skip

        # ------------------------------------------------------------- named API
        default_tokens = limits.default_new_tokens

        @shown_errors
        def compare(
            prompt: str,
            max_new_tokens: int = default_tokens,
            temperature: float = 0.0,
            top_p: float = 1.0,
            adapter: str = "",
        ) -> tuple[str, str]:
            """Base and tuned answers to one prompt: (base_answer, tuned_answer).

            max_new_tokens above the Space's cap is clamped to the cap; temperature 0 is
            greedy decoding; adapter picks one of several loaded adapters (default: first).
            """
            result = state.compare(prompt, max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_p=top_p, adapter=adapter or None)  # fmt: skip
            for note in result.notes:
                gr.Warning(note)
            return result.base.text, result.tuned.text

        gr.api(compare, api_name="compare", **model_job)

        @shown_errors
        def rate(
            prompt: str,
            answer_a: str,
            answer_b: str,
            relevance: int,
            accuracy: int,
            readability: int,
            preference: str,
            tuned: str = "b",
            adapter: str = "",
            relevance_a: int | None = None,
            accuracy_a: int | None = None,
            readability_a: int | None = None,
            relevance_b: int | None = None,
            accuracy_b: int | None = None,
            readability_b: int | None = None,
        ) -> str:
            """Record one rating in ratings.jsonl: relevance, accuracy and readability of
            the pair (integers 1-5) and the preference "a", "b" or "tie"; tuned says which
            answer came from the tuned model (default "b"). Optional: the six per-answer
            scores relevance_a … readability_b, all or none."""
            record = state.rate(
                prompt=prompt, answer_a=answer_a, answer_b=answer_b, preference=preference,
                scores={"relevance": relevance, "accuracy": accuracy, "readability": readability,
                        "relevance_a": relevance_a, "accuracy_a": accuracy_a,
                        "readability_a": readability_a, "relevance_b": relevance_b,
                        "accuracy_b": accuracy_b, "readability_b": readability_b},
                tuned=tuned, adapter=adapter or None, source="api",
            )  # fmt: skip
            return f"rating {record['id']} saved; preferred: {record['preferred']}"

        gr.api(rate, api_name="rate")

        @shown_errors
        def evaluate(file, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
            """Evaluate base vs tuned on an uploaded file; returns the report as JSON."""
            outcome = state.evaluate(
                file, progress=lambda fraction, message: progress(fraction, desc=message)
            )
            return outcome.report

        api_evaluate_btn.click(evaluate, [api_file], [api_report], api_name="evaluate",
                               **model_job)  # fmt: skip

    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.max_queue)
    demo.ft_plugin_state = state  # for tests and launchers
    return demo


def build_app(
    target: str | list[str],
    *,
    data_dir: Path,
    limits: Limits | None = None,
    ratings_dataset: str | None = None,
) -> gr.Blocks:
    """Load the run(s) once and build the Space. ``target``: run dirs or Hub adapter ids."""
    state = SpaceState.load(
        target, data_dir=Path(data_dir), limits=limits, ratings_dataset=ratings_dataset
    )
    return build_blocks(state)


# --------------------------------------------------------------------------- script


@dataclass
class SpaceConfig:
    targets: list[str]
    data_dir: Path
    ratings_dataset: str | None = None


def read_space_config(folder: Path = APP_DIR, environ: dict[str, str] | None = None) -> SpaceConfig:
    """Adapter id(s), data folder and ratings dataset: environment first, then config.yaml."""
    import yaml

    environ = dict(os.environ if environ is None else environ)
    path = Path(folder) / "config.yaml"
    config: dict[str, Any] = {}
    if path.is_file():
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            raise UserError(f"{path}: not valid YAML") from None
        if not isinstance(config, dict):
            raise UserError(f"{path}: expected a mapping (adapter:, data_dir:, …)")
    raw = environ.get("FT_PLUGIN_ADAPTER") or config.get("adapters") or config.get("adapter")
    if isinstance(raw, str):
        raw = raw.split(",")
    targets = [str(t).strip() for t in raw or [] if str(t).strip()]
    if not targets:
        raise UserError(
            f"no adapter: set FT_PLUGIN_ADAPTER=OWNER/NAME or `adapter:` in {path.name}"
        )
    data_dir = Path(environ.get("FT_PLUGIN_DATA_DIR") or config.get("data_dir") or "space_data")
    if not data_dir.is_absolute():
        data_dir = Path(folder) / data_dir
    dataset = environ.get("FT_PLUGIN_RATINGS_DATASET") or config.get("ratings_dataset") or None
    return SpaceConfig(targets, data_dir, dataset)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = read_space_config()
        demo = build_app(config.targets, data_dir=config.data_dir,
                         ratings_dataset=config.ratings_dataset)  # fmt: skip
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    demo.launch(**launch_kwargs(demo.ft_plugin_state.limits))


if __name__ == "__main__":
    main()
