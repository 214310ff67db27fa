"""`ft-plugin eval`: one evaluation of a target (and its baseline) on one dataset.

The runner picks the data (``--data`` or the run's held-out split), the template (for
labels and default metrics), computes every requested metric for the target and, with
``--baseline``, for the base model with the same settings, then builds the report (``folder.py`` writes it).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from ft_plugin.errors import UserError

from .dataset import EvalData, EvalSettings, evaluation_data, with_recipe_defaults
from .targets import LoadedTarget, is_run_dir, load_target

__all__ = ["EvalData", "EvalSettings", "evaluate_loaded", "evaluation_data", "run_evaluation"]

TEXT_METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL")
CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
KNOWN_METRICS = ("perplexity", *TEXT_METRICS, *CLASSIFICATION_METRICS, "latency")


@dataclass
class ModelResult:
    """One model's metrics (flat) and the details behind them.

    ``rows`` holds per-row values (``rouge1``…, sentence ``chrf``/``bleu``, ``nll`` and
    ``tokens``, ``predicted`` and ``correct``) for predictions.jsonl; ``statistics`` each
    corpus metric as summed per-row statistics, for the bootstrap and the group breakdown.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    answers: list[str] | None = None
    rows: dict[str, list[Any]] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)  # metric -> RowStatistic


def chosen_metrics(settings: EvalSettings, data: EvalData) -> list[str]:
    text_only = bool(data.examples) and all("text" in e for e in data.examples)
    default = data.template.metrics if data.template else ["perplexity"]
    wanted = settings.metrics or ([*default, "latency"] if not text_only else ["perplexity"])
    if text_only and (other := [m for m in wanted if m != "perplexity"]):
        raise UserError(
            f"--metrics {','.join(other)}: the rows are raw text (completion) with no prompt to "
            "answer; raw text supports --metrics perplexity"
        )
    unknown = [m for m in wanted if m not in KNOWN_METRICS]
    if unknown:
        raise UserError(
            f"--metrics: unknown metric {unknown[0]!r}; known: {', '.join(KNOWN_METRICS)}"
        )
    if any(m in CLASSIFICATION_METRICS for m in wanted) and not data.labels:
        name = data.template.name if data.template else "alpaca (no template)"
        raise UserError(
            f"--metrics {','.join(wanted)}: template {name} declares no labels; accuracy needs a classification template"
        )
    return wanted


def evaluate_model(
    model: Any,
    tokenizer: Any,
    data: EvalData,
    metrics: list[str],
    settings: EvalSettings,
    weights_bytes: int | None,
    role: str = "target",
) -> ModelResult:
    """Every requested metric for one model (``role`` names it in the progress bar)."""
    from ft_plugin.utils.memory import peak_memory_mb

    from .generation import generate_answers

    result = ModelResult()
    if "perplexity" in metrics:
        _perplexity(model, tokenizer, data, settings, result)
    generations = None
    chat = [e for e in data.examples if "prompt" in e]
    if _generates_answers(data, metrics, settings):
        generations = generate_answers(
            model, tokenizer, chat, max_new_tokens=settings.max_new_tokens,
            batch_size=settings.generation_batch_size, desc=f"generating: {role}",
        )  # fmt: skip
        result.answers = generations.texts
    if any(m in TEXT_METRICS for m in metrics):
        _text_scores(chat, generations.texts, metrics, result)
    if any(m in CLASSIFICATION_METRICS for m in metrics):
        result.metrics.update(
            _classification(model, tokenizer, chat, data.labels, settings, generations, result)
        )
    if "latency" in metrics:
        from .serving import serving_metrics

        batched = settings.generation_batch_size > 1  # a batch's time is no request's latency
        timed = (None if batched else generations) or generate_answers(
            model,
            tokenizer,
            chat[: settings.latency_samples],
            max_new_tokens=settings.max_new_tokens,
            desc=f"timing: {role}",
        )
        result.metrics.update(
            serving_metrics(timed.latencies_ms, timed.tokens_per_second, peak_memory_mb=peak_memory_mb(),
                            weights_bytes=weights_bytes, price_per_hour=settings.price_per_hour)
        )  # fmt: skip
    return result


def _generates_answers(data: EvalData, metrics: list[str], settings: EvalSettings) -> bool:
    return any(m in TEXT_METRICS for m in metrics) or bool(
        data.labels and settings.scoring == "generate"
    )


def generated_rows(data: EvalData, metrics: list[str], settings: EvalSettings) -> int:
    """How many answers :func:`evaluate_model` generates for one model (the latency
    metrics time their own answers unless answers were generated one at a time)."""
    chat = sum(1 for e in data.examples if "prompt" in e)
    rows = chat if _generates_answers(data, metrics, settings) else 0
    if "latency" in metrics and (not rows or settings.generation_batch_size > 1):
        rows += min(chat, settings.latency_samples)
    return rows


def _announce_generation(
    data: EvalData, metrics: list[str], settings: EvalSettings, roles: list[str]
) -> None:
    """One line before the longest part of an evaluation (a terminal also gets a bar)."""
    if rows := generated_rows(data, metrics, settings):
        models = f"{len(roles)} model{'s' if len(roles) > 1 else ''} ({', '.join(roles)})"
        most = settings.max_new_tokens
        limit = f", up to {most} new tokens each" if most else ""
        print(f"ft-plugin: generating {rows} rows × {models}{limit}", file=sys.stderr, flush=True)


def _perplexity(
    model: Any, tokenizer: Any, data: EvalData, settings: EvalSettings, result: ModelResult
) -> None:
    from .intervals import RowStatistic
    from .perplexity import corpus_perplexity

    sequence_len = settings.sequence_len or 2048
    ppl = corpus_perplexity(model, tokenizer, data.examples, sequence_len=sequence_len)
    result.metrics["perplexity"] = round(ppl.perplexity, 4)
    result.details["perplexity_tokens"] = ppl.tokens
    result.rows["nll"] = [round(nll, 4) for nll, _ in ppl.rows]
    result.rows["tokens"] = [count for _, count in ppl.rows]
    result.statistics["perplexity"] = RowStatistic.perplexity(ppl.rows)


def _text_scores(
    chat: list[dict[str, Any]], answers: list[str], metrics: list[str], result: ModelResult
) -> None:
    from .intervals import RowStatistic
    from .text_metrics import generation_metrics

    references = [e["completion"][0]["content"] for e in chat]
    scores = generation_metrics(answers, references)
    result.metrics.update({k: round(v, 4) for k, v in scores.to_dict().items() if k in metrics})
    result.details["bleu_signature"] = scores.bleu_signature
    result.details["chrf_signature"] = scores.chrf_signature
    result.rows.update({k: [round(v, 4) for v in vs] for k, vs in scores.rows.items()})
    for name in (m for m in TEXT_METRICS if m in metrics):
        pooled = scores.pooled.get(name)
        result.statistics[name] = (
            RowStatistic.pooled(pooled) if pooled else RowStatistic.mean(scores.rows[name])
        )


def _classification(
    model, tokenizer, chat, labels, settings, generations, result
) -> dict[str, float]:  # noqa: ANN001
    from .classification import classification_metrics, parse_label
    from .scoring import predict_labels

    truth = [e["completion"][0]["content"] for e in chat]
    if settings.scoring == "generate":
        predicted = [parse_label(text, labels) for text in generations.texts]
    else:
        predicted = predict_labels(model, tokenizer, chat, labels)
    scores = classification_metrics(truth, predicted, labels)
    result.details["classification"] = scores
    _classification_rows(truth, predicted, labels, result)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in scores.to_dict().items()}


def _classification_rows(
    truth: list[str], predicted: list[str | None], labels: list[str], result: ModelResult
) -> None:
    from .intervals import RowStatistic

    correct = [t == p for t, p in zip(truth, predicted, strict=True)]
    result.rows.update(truth=truth, predicted=predicted, correct=correct)
    result.statistics["accuracy"] = RowStatistic.mean([float(c) for c in correct])
    result.statistics["macro_f1"] = RowStatistic.macro_f1(truth, predicted, labels)


@dataclass
class EvalReport:
    models: dict[str, dict[str, float]]
    data: dict[str, Any]
    settings: dict[str, Any]
    delta: dict[str, float]
    details: dict[str, Any]
    intervals: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    distinguishable: dict[str, bool] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)  # predictions.jsonl

    def to_dict(self) -> dict[str, Any]:
        """report.json: everything but the predictions (a file of their own)."""
        out = asdict(self)
        del out["predictions"]
        return out


def run_evaluation(
    target: str, settings: EvalSettings
) -> tuple[EvalReport, dict[str, ModelResult], LoadedTarget, EvalData]:
    """Load ``target``, evaluate it (and its baseline); build the report (nothing written yet).

    Options left unset take the run's recipe ``eval:`` values (`with_recipe_defaults`)."""
    from ft_plugin.rundir import RunDir

    recipe = RunDir(target).load_recipe().recipe if is_run_dir(target) else None
    settings = with_recipe_defaults(settings, recipe)
    loaded = load_target(target, with_baseline=settings.baseline, dtype=settings.dtype)
    report, results, data = evaluate_loaded(loaded, settings)
    return report, results, loaded, data


def evaluate_loaded(
    loaded: LoadedTarget, settings: EvalSettings
) -> tuple[EvalReport, dict[str, ModelResult], EvalData]:
    """Evaluate an already loaded target (the Space keeps one in memory) and build the report."""
    target = loaded.name
    settings = with_recipe_defaults(settings, loaded.recipe)
    if settings.sequence_len is None and loaded.recipe is not None:
        settings.sequence_len = loaded.recipe.sequence_len
    if loaded.recipe is not None and loaded.recipe.rl and not settings.data:
        return _evaluate_preference_run(loaded, settings)
    data = evaluation_data(loaded, settings)
    metrics = chosen_metrics(settings, data)
    roles = ["target"] + (["baseline"] if settings.baseline and loaded.baseline else [])
    _announce_generation(data, metrics, settings, roles)
    results = {
        "target": evaluate_model(
            loaded.model, loaded.tokenizer, data, metrics, settings, loaded.adapter_bytes
        )
    }
    if settings.baseline:
        if loaded.baseline is None:
            raise UserError(
                f"--baseline: {target} is a base model already; evaluate a run directory"
            )
        with loaded.baseline() as base_model:
            results["baseline"] = evaluate_model(
                base_model, loaded.tokenizer, data, metrics, settings, None, role="baseline"
            )
    return _report(target, settings, data, metrics, results), results, data


def _evaluate_preference_run(
    loaded: LoadedTarget, settings: EvalSettings
) -> tuple[EvalReport, dict[str, ModelResult], EvalData]:
    """A preference run on its held-out pairs, against the run it started from."""
    from .preference import PREFERENCE_METRICS

    asked = settings.metrics or []
    unknown = [m for m in asked if m not in (*PREFERENCE_METRICS, *TEXT_METRICS)]
    if unknown:
        raise UserError(f"--metrics {unknown[0]}: a preference run's pairs give "
                        f"{', '.join(PREFERENCE_METRICS)} and {', '.join(TEXT_METRICS)}")  # fmt: skip
    text = [m for m in asked if m in TEXT_METRICS]
    data, results = _evaluate_pairs(loaded, settings, text)
    metrics = [*PREFERENCE_METRICS, *text]
    return _report(loaded.name, settings, data, metrics, results), results, data


def _evaluate_pairs(
    loaded: LoadedTarget, settings: EvalSettings, text_metrics: list[str]
) -> tuple[EvalData, dict[str, ModelResult]]:
    """The held-out pairs as ``EvalData`` and both models' results: the preference metrics,
    and ``text_metrics`` on greedy answers to the pairs' prompts."""
    from . import preference
    from .generation import generate_answers

    pairs = preference.held_out_pairs(loaded, settings)
    examples = preference.answer_examples(pairs, loaded.tokenizer)
    data = EvalData(examples, "held-out pairs of the run", None, rows_given=len(pairs))
    limit, recipe = loaded.recipe.sequence_len, loaded.recipe
    beta = preference.check_beta(recipe.rl_beta if recipe.rl != "orpo" else 1.0)
    results = {"target": ModelResult(), "baseline": ModelResult()}
    tuned = preference.score_pairs(loaded.model, loaded.tokenizer, pairs, limit)
    with preference.starting_model(loaded) as start_model:
        start = preference.score_pairs(start_model, loaded.tokenizer, pairs, limit)
        for role, model in (("target", loaded.model), ("baseline", start_model)):
            if text_metrics:
                answers = generate_answers(model, loaded.tokenizer, examples,
                                           max_new_tokens=settings.max_new_tokens,
                                           desc=f"generating: {role}")  # fmt: skip
                results[role].answers = answers.texts
                _text_scores(examples, answers.texts, text_metrics, results[role])
    for role, scores in (("target", tuned), ("baseline", start)):
        scored = preference.preference_result(scores, start, beta)
        results[role].statistics.update(scored["statistics"])
        results[role].rows.update(scored["rows"])
        results[role].metrics.update(
            {k: round(v.value(), 6) for k, v in scored["statistics"].items()}
        )
    return data, results


def _report(
    target: str,
    settings: EvalSettings,
    data: EvalData,
    metrics: list[str],
    results: dict[str, ModelResult],
) -> EvalReport:
    """The report of evaluated results: numbers, intervals, groups and the answers."""
    from .breakdown import group_breakdown, interval_summary
    from .predictions import prediction_rows

    models = {role: r.metrics for role, r in results.items()}
    delta = {}
    if "baseline" in models:
        delta = {k: round(v - models["baseline"][k], 6) for k, v in models["target"].items()
                 if isinstance(v, int | float) and isinstance(models["baseline"].get(k), int | float)
                 and not math.isnan(v)}  # fmt: skip
    details = {
        role: {k: v for k, v in r.details.items() if k != "classification"}
        for role, r in results.items()
    }
    return EvalReport(
        models=models,
        data={
            "source": data.source,
            "rows": len(data.examples),
            "rows_given": data.rows_given,
            "sampled": data.sampled,
            "template": data.template.name if data.template else None,
            "group_by": data.group_by,
        },
        settings={**asdict(settings), "metrics": metrics, "target": target},
        delta=delta,
        details=details,
        **interval_summary(results, settings.bootstrap, settings.seed),
        groups=group_breakdown(data.groups(), results, settings.bootstrap, settings.seed),
        predictions=prediction_rows(data.examples, results),
    )
