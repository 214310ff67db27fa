"""Everything the Space does, without Gradio: load once, compare, rate, evaluate, document,
and (for its owner, :mod:`.access`) train, serve and publish.

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
from .access import Access, Caller
from .admission import ModelGate
from .loading import AdapterInfo, load_adapters
from .settings import DATA_SUFFIXES, Limits
from .training.recipe import DEFAULT_BASE
from .training.service import TrainingService

NO_MODEL = (
    "no fine-tuned model in this Space yet: its owner trains one in the Train tab and serves it"
)


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


def warm_imports() -> None:
    """Import, once at start-up, what model loading and upload parsing share: two requests
    importing transformers' lazy modules in two threads at once failed one of them
    (``AttributeError: module 'transformers' has no attribute 'PreTrainedTokenizerBase'``)."""
    import peft  # noqa: F401
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase  # noqa: F401

    import ft_plugin.data.jobs  # noqa: F401
    import ft_plugin.data.preview  # noqa: F401
    import ft_plugin.data.reading  # noqa: F401
    import ft_plugin.evaluate.runner  # noqa: F401
    import ft_plugin.evaluate.targets  # noqa: F401

    transformers.models.llama.modeling_llama  # noqa: B018  (the embedded model's classes)


class SpaceState:
    """Everything the Space does, without Gradio: load once, compare, rate, evaluate.

    One copy of the base weights serves every answer: adapters are named adapters of one
    ``PeftModel`` (``load_adapter``/``set_adapter``) and base answers come from the same
    model with the adapter disabled. A lock serialises model use across events, and one
    more the loading of models and tokenizers (serving a run, the Train tab's data step).
    Who may train, serve and publish is ``access`` (default: nobody).
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
        access: Access | None = None,
        base_models: Sequence[str] = (),
    ) -> None:
        warm_imports()
        self.loaded = loaded
        self.adapters = {a.label: a for a in adapters}
        self.data_dir = Path(data_dir)
        self.limits = limits or Limits()
        self.access = access or Access("off")
        self.configured_bases = [str(b) for b in base_models]
        self.rng = rng or random.SystemRandom()
        self._model_lock = threading.RLock()
        self.loading_lock = threading.RLock()  # one model or tokenizer load at a time
        self._work = Path(tempfile.mkdtemp(prefix="ft-plugin-space-"))  # reports, plots
        weakref.finalize(self, shutil.rmtree, self._work, True)
        self.ratings = ratings.RatingsStore(
            self.data_dir,
            ratings_dataset=ratings_dataset,
            every_minutes=self.limits.ratings_push_minutes,
        )
        self.pairs = ratings.GeneratedPairs(self.limits.pair_minutes)
        self.gate = ModelGate(running=self.limits.concurrency, admitted=self.limits.max_queue)
        self._training: TrainingService | None = None
        self.serve_notes: list[str] = []  # what serving a newly trained run changed

    @property
    def training(self) -> TrainingService:
        """The Train tab's drafts and jobs (created on first use: a Space that only
        compares never starts a job watcher)."""
        if self._training is None:
            self._training = TrainingService(
                self.data_dir, self.limits, self.access, base_models=self.base_models,
                in_use=lambda: {info.run_dir for info in self.adapters.values()},
                lock=self.loading_lock,
            )  # fmt: skip
        return self._training

    def close(self) -> None:
        """Stop a running training (checkpoint first) when the Space shuts down."""
        if self._training is not None:
            self._training.close()

    def base_models(self) -> list[str]:
        """The base models the Space trains: the owner's ``base_models:``, else the
        embedded model and the bases of the served runs."""
        if self.configured_bases:
            return list(self.configured_bases)
        served = [info.recipe.base_model for info in self.adapters.values()]
        return list(dict.fromkeys([DEFAULT_BASE, *served]))

    def serve_run(self, caller: Caller, run_id: str, *, replace: bool = False) -> str:
        """Serve a finished run of the Train tab (the owner's choice) beside the loaded
        ones (one base model, one PEFT type), or alone with ``replace``; its label."""
        run_dir = self.training.finished_run(caller, run_id, "serve")
        recipe = self.training.jobs.job(run_id).get("recipe", "run")
        label = f"{Path(recipe).stem} ({run_id})"
        self._serve(run_dir, label, replace=replace)
        return label

    def publish(
        self, caller: Caller, run_id: str, repo_id: str, *, private: bool = True,
        overwrite: bool = False,
    ) -> Any:  # fmt: skip
        """Publish a finished run of the Train tab (the owner's) with the Space's token,
        under the owners' namespaces on a Space with Hugging Face sign-in."""
        return self.training.publish(caller, run_id, repo_id, private=private,
                                     overwrite=overwrite,
                                     namespaces=self.access.publish_namespaces())  # fmt: skip

    def _serve(self, run_dir: Path, label: str, *, replace: bool) -> None:
        kept = [] if replace else [
            (info.source, info.label) for info in self.adapters.values() if info.label != label
        ]  # fmt: skip
        sources, labels = [s for s, _ in kept], [name for _, name in kept]
        with self.loading_lock:
            try:
                loaded, infos = load_adapters(
                    [*sources, str(run_dir)], self.data_dir, [*labels, label]
                )
            except UserError as exc:
                if not sources:
                    raise
                raise UserError(
                    f"{label} cannot be served beside the runs served now ({exc}); "
                    "tick Replace to serve it alone"
                ) from None
            with self._model_lock:
                self.loaded, self.adapters = loaded, {a.label: a for a in infos}
        self.serve_notes.append(f"now serving {', '.join(self.adapters)}")

    @classmethod
    def load(
        cls,
        targets: str | Sequence[str],
        *,
        data_dir: Path,
        limits: Limits | None = None,
        ratings_dataset: str | None = None,
        rng: random.Random | None = None,
        access: Access | None = None,
        base_models: Sequence[str] = (),
    ) -> SpaceState:
        """Load one run (or several adapters of one base model) from paths or Hub ids;
        with none, the Space starts empty and serves what its owner trains and serves."""
        targets = [targets] if isinstance(targets, str) else [t for t in targets if t]
        loaded, infos = load_adapters(targets, Path(data_dir)) if targets else (None, [])
        return cls(
            loaded,
            infos,
            data_dir=Path(data_dir),
            limits=limits,
            ratings_dataset=ratings_dataset,
            rng=rng,
            access=access,
            base_models=base_models,
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
        session: str | None = None,
    ) -> Comparison:
        """The base model's and the tuned model's answers to one prompt, remembered for
        ``session`` (a page or API client) so that it can rate them."""
        prompt = self.check_prompt(prompt)
        settings, notes = self.generation_settings(max_new_tokens, temperature, top_p)
        with self.gate.slot(), self._using(adapter) as info:
            messages = self.messages(prompt, info.label)
            tokenizer = self.loaded.tokenizer
            tuned = generate_answer(self.loaded.model, tokenizer, messages, **settings)
            with self.loaded.baseline() as base_model:
                base = generate_answer(base_model, tokenizer, messages, **settings)
        shown = {k: v for k, v in settings.items() if k != "max_time"}
        pair = ratings.GeneratedPair(prompt, info.label, base.text, tuned.text, shown)
        self.pairs.add(session, pair)
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
        session: str | None = None,
    ) -> dict[str, Any]:
        """Rate a pair this Space generated for ``session`` (one rating each) and append
        it to ratings.jsonl as one JSON line (unblinded, PII-scrubbed)."""
        prompt = self.check_prompt(prompt)
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
        self._check_row_lengths(path)
        return str(path), path.name

    def _check_row_lengths(self, path: Path) -> None:
        """Refuse a row with a text longer than ``max_eval_row_chars`` (a 5 MB prompt
        would hold the model for minutes), naming the row and the column."""
        from ft_plugin.data.reading import read_rows

        cap = self.limits.max_eval_row_chars
        for number, row in enumerate(read_rows(str(path)), 1):
            for column, value in row.items():
                if _longest_text(value) > cap:
                    raise UserError(
                        f"{path.name}: row {number}, column {column}: longer than this "
                        f"Space's cap of {cap:,} characters a field"
                    )

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
        with self.gate.slot(), self._using(info.label):
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


def _longest_text(value: Any) -> int:
    """The longest string in a cell (chat rows nest them in lists of dicts)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_text(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return max((_longest_text(v) for v in value), default=0)
    return 0
