"""The Train tab's data step: read an upload, map its columns, preview and clean it.

Everything here is ``ft_plugin.data`` (the same reading, encoding detection, column
checks, rendering and cleaning as ``ft-plugin data prepare`` and ``templates preview``),
with the Space's caps on size and rows; nothing trains.

Example (usage, not run as a doctest: it needs a model, files or the Hub)::

    upload = inspect_upload(Path("internal_medicine.csv"), "medical", Limits())
    upload.encoding, upload.rows, upload.mapping  # ('gb18030', 6844, {'instruction': 'ask', …})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from ..settings import DATA_SUFFIXES, Limits

SAMPLE = "builtin:"  # prefix of a template's sample data, as recipes spell it


@dataclass
class Upload:
    """A data file the Space may train on, read once: its columns and a suggested mapping."""

    source: str  # a local path, or builtin:TEMPLATE
    shown: str  # what to call it on the page (the file name, never the server's path)
    template: str
    encoding: str | None
    rows: int
    columns: list[str]
    mapping: dict[str, str] = field(default_factory=dict)  # template field -> column
    head: list[dict[str, Any]] = field(default_factory=list)  # the first rows, as read


def template_fields(template: str) -> dict[str, bool]:
    """The template's fields, in order, and whether each is required.

    Example:
        >>> template_fields("medical")
        {'instruction': True, 'input': False, 'output': True}
    """
    from ft_plugin.data.templates import load_template

    loaded = load_template(template)
    return {name: name in loaded.required for name in loaded.fields}


def check_file(path: Path, limits: Limits) -> None:
    """Refuse a file of the wrong kind or over the Space's upload cap, naming both."""
    if path.suffix.lower() not in DATA_SUFFIXES:
        raise UserError(f"{path.name}: expected one of {', '.join(DATA_SUFFIXES)}")
    size_mb = path.stat().st_size / 2**20
    if size_mb > limits.max_train_upload_mb:
        raise UserError(
            f"{path.name}: {size_mb:.1f} MB is over this Space's {limits.max_train_upload_mb} MB "
            "upload limit (its owner sets max_train_upload_mb)"
        )


def inspect_upload(path: Path | None, template: str, limits: Limits) -> Upload:
    """Read ``path`` (None: the template's sample): encoding, rows, columns and the column
    the template would take for each field (its accepted names, else the closest)."""
    from ft_plugin.data.columns import suggest_column
    from ft_plugin.data.encoding import file_encoding
    from ft_plugin.data.reading import read_rows
    from ft_plugin.data.templates import load_template

    loaded = load_template(template)
    if path is None:
        source, shown, encoding = f"{SAMPLE}{loaded.name}", f"{SAMPLE}{loaded.name}", None
    else:
        check_file(path, limits)
        source, shown = str(path), path.name
        encoding = None if path.suffix == ".parquet" else file_encoding(path)
    rows = read_rows(source, encoding=encoding)
    if not rows:
        raise UserError(f"{shown}: no rows")
    if len(rows) > limits.max_train_rows:
        raise UserError(
            f"{shown}: {len(rows):,} rows is over this Space's cap of {limits.max_train_rows:,} "
            "rows; upload a sample of the file, or train with `ft-plugin train` on your machine"
        )
    columns = list(dict.fromkeys(key for row in rows[:200] for key in row))
    mapping: dict[str, str] = {}
    for name in loaded.fields:
        accepted = [c for c in [name, *loaded.fields[name]] if c in columns]
        guess = accepted[0] if accepted else None
        if guess is None and name in loaded.required:
            guess = suggest_column(name, loaded, columns, set(mapping.values()), rows[:200])
        if guess is not None and guess not in mapping.values():
            mapping[name] = guess
    return Upload(source, shown, loaded.name, encoding, len(rows), columns, mapping, rows[:20])


def checked_mapping(upload: Upload, mapping: dict[str, str | None]) -> dict[str, str]:
    """The user's mapping with empty choices dropped; every required field mapped to a
    column of the file (else one message naming the field and the columns)."""
    chosen = {f: c for f, c in mapping.items() if c}
    fields = template_fields(upload.template)
    unknown = [f for f in chosen if f not in fields]
    if unknown:
        raise UserError(
            f"fields: {unknown[0]!r} is not a field of template {upload.template} "
            f"(its fields: {', '.join(fields)})"
        )
    for name, column in chosen.items():
        if column not in upload.columns:
            raise UserError(
                f"{upload.shown}: column {column!r} (for {name}) not found; the file's columns: "
                f"{', '.join(upload.columns)}"
            )
    missing = [f for f, required in fields.items() if required and f not in chosen]
    if missing:
        raise UserError(
            f"{upload.shown}: choose the column that holds {missing[0]!r} (required by template "
            f"{upload.template}); the file's columns: {', '.join(upload.columns)}"
        )
    return chosen


def parse_mapping(text: str | dict[str, Any] | None) -> dict[str, str]:
    """A field mapping given as a JSON object string (the API's form).

    Example:
        >>> parse_mapping('{"instruction": "ask", "output": "answer"}')
        {'instruction': 'ask', 'output': 'answer'}
    """
    if not text:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        raise UserError(
            'fields: expected a JSON object such as {"instruction": "ask", "output": "answer"}'
        ) from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UserError('fields: expected a JSON object of strings, e.g. {"output": "answer"}')
    return {str(k): v for k, v in value.items()}


def preview(upload: Upload, mapping: dict[str, str], base_model: str, sequence_len: int,
            rows: int = 3) -> str:  # fmt: skip
    """The first ``rows`` rows rendered exactly as training renders them, the part that
    carries loss between « and »; warnings about over-long rows after them."""
    from ft_plugin.data.preview import template_preview
    from ft_plugin.data.templates import load_template
    from ft_plugin.models import base_tokenizer

    _, blocks, warnings = template_preview(
        load_template(upload.template), upload.source, base_tokenizer(base_model), rows=rows,
        sequence_len=sequence_len, fields=mapping, encoding=upload.encoding,
    )  # fmt: skip
    return "\n\n".join([*blocks, *warnings])


@dataclass
class Cleaned:
    """What the cleaning kept and dropped (``data prepare``'s report) and its files."""

    report: dict[str, Any]
    markdown: str
    histogram: Path | None  # token lengths, with the sequence_len line


def clean(upload: Upload, mapping: dict[str, str], base_model: str, sequence_len: int,
          folder: Path) -> Cleaned:  # fmt: skip
    """Run the template's cleaning on the upload into ``folder`` (clean.jsonl + report)."""
    from ft_plugin.data.jobs import PrepareJob, run_job
    from ft_plugin.data.prepare import PrepareOptions
    from ft_plugin.models import base_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    job = PrepareJob(upload.template, [upload.source], mapping, None, upload.encoding)
    result = run_job(job, folder / "clean.jsonl", PrepareOptions(sequence_len=sequence_len),
                     tokenizer=base_tokenizer(base_model))  # fmt: skip
    if result.report.get("output_rows", 0) == 0:
        raise UserError(f"{upload.shown}: no rows left after cleaning ({_dropped(result.report)})")
    histograms = sorted(folder.glob("*lengths.png"))
    markdown = result.report_path.with_suffix(".md")
    text = markdown.read_text(encoding="utf-8") if markdown.is_file() else ""
    return Cleaned(result.report, _for_the_page(text, upload, folder),
                   histograms[0] if histograms else None)  # fmt: skip


def _for_the_page(markdown: str, upload: Upload, folder: Path) -> str:
    """The report without the server's paths (file names only) or its image links (the
    page shows the histogram itself)."""
    markdown = markdown.replace(upload.source, upload.shown).replace(str(folder) + "/", "")
    return "\n".join(line for line in markdown.splitlines() if not line.startswith("!["))


def _dropped(report: dict[str, Any]) -> str:
    dropped = report.get("dropped") or {}
    return ", ".join(f"{reason} {count}" for reason, count in dropped.items()) or "none kept"
