"""`ft-plugin data prepare`: clean and shape a dataset through a domain template, with a report.

Pipeline: read (streaming) → canonical fields → clean (normalise, strip markup, PII,
lengths, exact and near duplicates) → labels checked → [balance] → [augment] → write
→ token-length statistics, [topics] → report (JSON, Markdown, PNG plots). Without
balancing, augmentation or topics the rows stream from input to output, so memory does
not grow with the file size. Outputs are written to temporary files and renamed.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ft_plugin.errors import DataError
from ft_plugin.utils.io import atomic_writer

from .cleaning import CleaningOptions, CleaningReport, clean_rows
from .columns import check_columns
from .lengths import length_stats
from .reading import iter_rows, local_encoding
from .templates import Template

Row = dict[str, Any]


@dataclass
class PrepareOptions:
    """What `prepare_dataset` does beyond the template's cleaning defaults."""

    scrub_pii: bool | None = None  # None: the template's default
    near_dup_threshold: float | None | Literal["template"] = "template"
    balance: Literal["none", "downsample", "oversample"] = "none"
    target_ratio: float = 1.0
    augment: list[str] = field(default_factory=list)  # "template", "synonym"
    augment_limit: int | None = 100
    topics: int | Literal["auto"] | None = None
    sequence_len: int = 512
    seed: int = 42
    field_map: dict[str, str] = field(default_factory=dict)  # canonical field -> column
    encoding: str | None = None  # local text files: None detects
    recipe_key: str | None = None  # `datasets.N` when the inputs come from a recipe


@dataclass
class PrepareResult:
    """Where the outputs are, and the report."""

    output: Path
    report_path: Path
    report: dict[str, Any]


def cleaning_options(template: Template, options: PrepareOptions) -> CleaningOptions:
    """The template's cleaning defaults, with the command line's overrides."""
    spec = template.cleaning
    threshold = (
        spec.near_dup_threshold
        if options.near_dup_threshold == "template"
        else options.near_dup_threshold
    )
    return CleaningOptions(
        scrub_pii=spec.scrub_pii if options.scrub_pii is None else options.scrub_pii,
        min_chars=spec.min_chars,
        max_chars=spec.max_chars,
        near_dup_threshold=threshold,
    )


_HEAD_ROWS = 100  # rows read ahead to check the columns before streaming the rest


def _checked_input(template: Template, path: str, options: PrepareOptions) -> Iterator[Row]:
    """The rows of ``path``, after checking that its columns can fill the template."""
    rows = iter_rows(path, encoding=options.encoding)
    head = list(itertools.islice(rows, _HEAD_ROWS))
    check_columns(template, path, head, options.field_map, recipe_key=options.recipe_key)
    yield from head
    yield from rows


def _canonical_rows(
    template: Template, rows: Iterable[Row], mapping: dict[str, str]
) -> Iterator[Row]:
    for row in rows:
        yield template.canonical(row, mapping)


def _checked_labels(
    template: Template, rows: Iterable[Row], report: CleaningReport
) -> Iterator[Row]:
    if template.labels is None:
        yield from rows
        return
    label = template.labels.field
    for row in rows:
        value = template.labels.normalize(row.get(label))
        if value is None:
            report.dropped["unknown_label"] += 1
            continue
        yield {**row, label: value}


def _augment(template: Template, rows: list[Row], options: PrepareOptions) -> list[Row]:
    from .augment import fill_slots, synonym_replace

    table = template.augmentation
    added: list[Row] = []
    if "template" in options.augment:
        if not table.patterns:
            raise DataError(
                f"--augment template: template {template.name} declares no augmentation.patterns"
            )
        added += fill_slots(
            table.patterns, table.slots, limit=options.augment_limit, seed=options.seed
        )
    if "synonym" in options.augment:
        if not table.synonyms:
            raise DataError(
                f"--augment synonym: template {template.name} declares no augmentation.synonyms"
            )
        added += synonym_replace(
            rows, table.synonyms, fields=template.text_fields, seed=options.seed
        )
    return rows + added


def _write_jsonl(path: Path, rows: Iterable[Row], cleaning: CleaningReport) -> Iterator[Row]:
    """Write rows to ``path`` atomically while passing them on (so stats can stream too).

    Keeping no row at all is an error, not an empty output.
    """
    with atomic_writer(path) as out:
        written = 0
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
            yield row
        if written == 0:
            reasons = ", ".join(f"{k} {v}" for k, v in cleaning.dropped.items()) or "no rows read"
            raise DataError(
                f"{path}: 0 rows kept of {cleaning.input_rows} (dropped: {reasons}); nothing written"
            )


def prepare_dataset(
    template: Template,
    inputs: list[str],
    output: Path,
    *,
    tokenizer: Any | None,
    options: PrepareOptions,
    report_path: Path | None = None,
) -> PrepareResult:
    """Clean ``inputs`` through ``template`` into ``output`` (JSONL) and write the report.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        from ft_plugin.data.templates import load_template
        result = prepare_dataset(load_template("finance-sentiment"), ["builtin:finance-sentiment"],
                                 Path("out.jsonl"), tokenizer=None, options=PrepareOptions())
        result.report["output_rows"]  # 92
    """
    cleaning = CleaningReport()
    rows: Iterable[Row] = (
        row for path in inputs for row in _checked_input(template, path, options)
    )
    rows = _canonical_rows(template, rows, options.field_map)
    rows = clean_rows(
        rows, text_fields=template.text_fields, required_fields=template.required,
        options=cleaning_options(template, options), report=cleaning,
    )  # fmt: skip
    rows = _checked_labels(template, rows, cleaning)
    extras: dict[str, Any] = {}
    label_field = template.labels.field if template.labels else None
    needs_all = options.balance != "none" or options.augment or options.topics is not None
    if needs_all:
        materialized = list(rows)
        if label_field:
            from .balance import label_distribution

            extras["labels_before_balance"] = label_distribution(materialized, label_field)
        if options.balance != "none":
            if not label_field:
                raise DataError(f"--balance: template {template.name} has no labels to balance")
            from .balance import balance_rows

            materialized, balance = balance_rows(
                materialized, label_field, strategy=options.balance,
                target_ratio=options.target_ratio, seed=options.seed,
            )  # fmt: skip
            extras["balance"] = balance.to_dict()
        if options.augment:
            from .augment import AugmentReport

            materialized = _augment(template, materialized, options)
            extras["augmentation"] = AugmentReport.from_rows(materialized).to_dict()
        rows = materialized
    lengths: list[int] = []
    labels: Counter[str] = Counter()
    texts: list[str] = []
    written = 0
    for row in _write_jsonl(output, rows, cleaning):
        written += 1
        if label_field:
            labels[row[label_field]] += 1
        if tokenizer is not None:
            lengths.append(_token_length(template, row, tokenizer))
        if options.topics is not None:
            texts.append(" ".join(str(row.get(f) or "") for f in template.text_fields))
    cleaning.output_rows = written
    report = _report(template, inputs, output, cleaning, labels, lengths, options, extras)
    if options.topics is not None:
        from .clustering import cluster_topics

        topics = cluster_topics(
            texts, k=None if options.topics == "auto" else options.topics, seed=options.seed
        )
        report["topics"] = {k: v for k, v in topics.to_dict().items() if k != "assignments"}
        extras["topic_report"] = topics
    report_path = report_path or output.with_suffix(".report.json")
    from .report import write_report

    write_report(report, report_path, topic_report=extras.get("topic_report"), lengths=lengths)
    return PrepareResult(output, report_path, report)


def _token_length(template: Template, row: Row, tokenizer: Any) -> int:
    example = template.render(row)
    if isinstance(example, str):
        return 0
    messages = example["prompt"] + example["completion"]
    return len(
        tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    )


def _report(template, inputs, output, cleaning, labels, lengths, options, extras) -> dict[str, Any]:  # noqa: ANN001
    report: dict[str, Any] = {
        "template": template.name,
        "inputs": inputs,
        "encodings": {path: local_encoding(path, options.encoding) for path in inputs},
        "output": str(output),
        **cleaning.to_dict(),
    }
    if template.labels:
        report["labels"] = {label: labels.get(label, 0) for label in template.labels.values}
    for key in ("labels_before_balance", "balance", "augmentation"):
        if key in extras:
            report[key] = extras[key]
    report["length_tokens"] = length_stats(lengths, options.sequence_len) if lengths else None
    return report
