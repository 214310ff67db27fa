"""Everything the Space does, without Gradio: load once, compare, rate, evaluate, document.

Example (usage, not run as a doctest: it loads a model)::

    state = SpaceState.load("runs/medical-lora", data_dir=Path("space_data"))
    result = state.compare("What are the warning signs of a stroke?", max_new_tokens=64)
    print(result.base.text, result.tuned.text, result.tuned.stats())
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError
from ft_plugin.evaluate.generation import Answer, generate_answer

from . import card, ratings
from .loading import AdapterInfo, load_adapters
from .settings import DATA_SUFFIXES, Limits
from .training.service import TrainingService

NO_MODEL = "no fine-tuned model in this Space yet: train one in the Train tab"


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
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def answers_table(self) -> list[list[Any]]:
        """Rows ``[row, prompt, reference, base, tuned, change]``: what each model said,
        with the change in the per-row score (ROUGE-L, else chrF) the report sorts by."""
        from ft_plugin.evaluate.predictions import showcase_score

        key = showcase_score(self.predictions)
        out = []
        for row in self.predictions:
            change = None
            if key and "base_scores" in row:
                change = round(row["tuned_scores"][key] - row["base_scores"][key], 2)
            base = row.get("base_answer", row.get("base_predicted"))
            tuned = row.get("tuned_answer", row.get("tuned_predicted"))
            out.append([row["id"], row["prompt"], row["reference"], base, tuned, change])
        return out

    def table(self) -> list[list[Any]]:
        """Rows ``[metric, base, tuned, delta]`` for every metric either model has."""
        models = self.report["models"]
        target, base = models.get("target", {}), models.get("baseline", {})
        names = list(dict.fromkeys([*target, *base]))
        return [[n, base.get(n), target.get(n), self.report["delta"].get(n)] for n in names]


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
        self.limits = limits or Limits()
        self.rng = rng or random.SystemRandom()
        self._model_lock = threading.RLock()
        self._work = Path(tempfile.mkdtemp(prefix="ft-plugin-space-"))  # reports, plots
        weakref.finalize(self, shutil.rmtree, self._work, True)
        self.ratings = ratings.RatingsStore(
            self.data_dir,
            ratings_dataset=ratings_dataset,
            every_minutes=self.limits.ratings_push_minutes,
        )
        self._training: TrainingService | None = None
        self.serve_notes: list[str] = []  # what serving a newly trained run changed

    @property
    def training(self) -> TrainingService:
        """The Train tab's drafts and jobs (created on first use: a Space that only
        compares never starts a job watcher)."""
        if self._training is None:
            self._training = TrainingService(self.data_dir, self.limits, on_finished=self.serve)
        return self._training

    def close(self) -> None:
        """Stop a running training (checkpoint first) when the Space shuts down."""
        if self._training is not None:
            self._training.close()

    def serve(self, run_dir: Path, label: str) -> None:
        """Serve a newly trained run, as ``label``, beside the loaded ones (one base model,
        one PEFT type), else alone; Compare, Evaluate and Rate see it at once."""
        kept = [(info.source, info.label) for info in self.adapters.values() if info.label != label]
        sources, labels = [s for s, _ in kept], [name for _, name in kept]
        with self._model_lock:
            try:
                loaded, infos = load_adapters(
                    [*sources, str(run_dir)], self.data_dir, [*labels, label]
                )
            except UserError as exc:
                if not sources:
                    raise
                loaded, infos = load_adapters([str(run_dir)], self.data_dir, [label])
                self.serve_notes.append(f"now serving {label} alone: {exc}")
            self.loaded, self.adapters = loaded, {a.label: a for a in infos}

    @classmethod
    def load(
        cls,
        targets: str | Sequence[str],
        *,
        data_dir: Path,
        limits: Limits | None = None,
        ratings_dataset: str | None = None,
        rng: random.Random | None = None,
    ) -> SpaceState:
        """Load one run (or several adapters of one base model) from paths or Hub ids;
        with none, the Space starts empty and serves what its Train tab trains."""
        targets = [targets] if isinstance(targets, str) else [t for t in targets if t]
        loaded, infos = load_adapters(targets, Path(data_dir)) if targets else (None, [])
        return cls(
            loaded,
            infos,
            data_dir=Path(data_dir),
            limits=limits,
            ratings_dataset=ratings_dataset,
            rng=rng,
        )

    # ----------------------------------------------------------------- the ratings store
    @property
    def ratings_path(self) -> Path:
        return self.ratings.path

    @property
    def scheduler(self) -> Any:
        return self.ratings.scheduler

    @property
    def ratings_push_error(self) -> str | None:
        return self.ratings.push_error

    @property
    def _ratings_lock(self) -> Any:
        return self.ratings.lock

    # ----------------------------------------------------------------- adapters, prompts
    @property
    def adapter_labels(self) -> list[str]:
        return list(self.adapters)

    def adapter(self, label: str | None = None) -> AdapterInfo:
        if not self.adapters:
            raise UserError(NO_MODEL)
        if not label:
            return next(iter(self.adapters.values()))
        if label not in self.adapters:
            raise UserError(f"adapter {label!r}: not loaded; choose one of {self.adapter_labels}")
        return self.adapters[label]

    def example_prompts(self, label: str | None = None) -> list[str]:
        template = self.adapter(label).template if self.adapters else None
        if template and template.examples:
            return list(template.examples)
        return ["Explain what fine-tuning a language model means, in two sentences."]

    def disclaimer(self, label: str | None = None) -> str | None:
        template = self.adapter(label).template if self.adapters else None
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
                f"max_new_tokens {tokens} is above this Space's cap; clamped to "
                f"{limits.max_new_tokens}"
            )
            tokens = limits.max_new_tokens
        if not 0.0 <= temperature <= limits.max_temperature:
            raise UserError(f"temperature: {temperature} is outside 0-{limits.max_temperature}")
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"top_p: {top_p} is outside (0, 1]")
        settings = {"max_new_tokens": tokens, "temperature": temperature, "top_p": top_p}
        return {**settings, "max_time": limits.max_time_s}, notes

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
        answers = {"answer_a": answer_a, "answer_b": answer_b}
        max_chars = self.limits.max_answer_chars
        checked, choice, slot = ratings.check_rating(answers, scores, preference, tuned, max_chars)
        record = ratings.new_record(
            adapter=self.adapter(adapter).label,
            prompt=prompt,
            answers=answers,
            scores=checked,
            preference=choice,
            tuned=slot,
            source=source,
            settings=settings,
        )
        self.ratings.append(record)
        return record

    def read_ratings(self) -> list[dict[str, Any]]:
        return self.ratings.read()

    def ratings_summary(self) -> dict[str, Any]:
        """Counts, mean scores per model (with 95% intervals) and preference shares."""
        return self.ratings.summary()

    # ----------------------------------------------------------------- evaluate
    def _eval_data(
        self, info: AdapterInfo, data_path: str | None, use_sample: bool
    ) -> tuple[str, str]:
        """What to evaluate on and how to name it in the report (never the upload path)."""
        if use_sample:
            from ft_plugin.data.reading import builtin_sample_path

            if info.template is None:
                raise UserError(
                    f"{info.label} was trained without a domain template, so there is no "
                    "sample data: upload a file"
                )
            builtin_sample_path(info.template.name)  # a clear error when absent
            return f"builtin:{info.template.name}", f"builtin:{info.template.name}"
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
        return str(path), path.name

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
        from ft_plugin.evaluate.runner import EvalSettings, evaluate_loaded

        report_progress = progress or (lambda fraction, message: None)
        info = self.adapter(adapter)
        data, shown = self._eval_data(info, data_path, use_sample)
        rows = self.limits.max_eval_rows if not max_rows else int(max_rows)
        rows = max(1, min(rows, self.limits.max_eval_rows))
        settings = EvalSettings(
            data=data,
            baseline=True,
            max_samples=rows,
            max_new_tokens=self.limits.eval_max_new_tokens,
            latency_samples=min(8, rows),
        )
        report_progress(0.1, f"Evaluating {info.label} and its base model on {shown}")
        with self._using(info.label):
            target = dataclasses.replace(
                self.loaded,
                name=info.label,
                recipe=info.recipe,
                run_dir=info.run_dir,
                adapter_bytes=info.adapter_bytes,
            )
            report, results, eval_data = evaluate_loaded(target, settings)
        report_progress(0.9, "Writing the report")
        return self._write_report(
            report.to_dict(), shown, results, eval_data.labels, report.predictions
        )

    def _write_report(
        self, report: dict[str, Any], shown: str, results: Any, labels: Any, predictions: Any
    ) -> EvalOutcome:
        from ft_plugin.evaluate.report import write_eval_report

        report["data"]["source"] = shown  # not the server's upload path
        report["settings"]["data"] = shown
        folder = Path(tempfile.mkdtemp(prefix="eval-", dir=self._work)) / "report"
        write_eval_report(report, folder, results=results, labels=labels, trainer_state=None,
                          predictions=predictions)  # fmt: skip
        archive = Path(shutil.make_archive(str(folder.parent / "evaluation-report"), "zip", folder))
        self._prune(prefix="eval-", keep=8)
        return EvalOutcome(report, folder, archive, sorted(folder.glob("*.png")), predictions or [])

    def _prune(self, *, prefix: str, keep: int) -> None:
        old = sorted(self._work.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime)[:-keep]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    # ----------------------------------------------------------------- card
    def card_markdown(self, adapter: str | None = None) -> str:
        """The run's model card (README.md), or one built from the run directory."""
        return card.card_markdown(self.adapter(adapter))

    def training_metrics(self, adapter: str | None = None) -> dict[str, Any]:
        return card.training_metrics(self.adapter(adapter))

    def training_curves(self, adapter: str | None = None) -> Path | None:
        return card.training_curves(self.adapter(adapter), self._work)
