"""Row cleaning passes for domain datasets: normalise, strip HTML, scrub PII, filter, deduplicate.

`clean_rows` streams rows (dicts) through the passes and counts everything it does in a
`CleaningReport`: every dropped row has exactly one reason, and nothing raises on bad row
content. English and CJK text both work. One module per pass:

- :mod:`.normalize`: NFKC (Chinese punctuation kept) and whitespace (`normalize_text`);
- :mod:`.markup`: HTML tags, entities, script and style contents (`strip_markup`);
- :mod:`.pii`: typed placeholders for e-mails, IDs, accounts, dates of birth, cards and
  phones (`scrub_pii`; checksums by python-stdnum, phones by phonenumbers);
- :mod:`.dedup`: exact (blake2b) and near (MinHash LSH) duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .dedup import Deduper
from .markup import MarkupError, strip_markup
from .normalize import normalize_text, normalize_unicode, normalize_whitespace
from .pii import scrub_pii

__all__ = [
    "CleaningOptions",
    "CleaningReport",
    "MarkupError",
    "clean_rows",
    "normalize_text",
    "scrub_pii",
    "strip_markup",
]


@dataclass
class CleaningOptions:
    """Which passes `clean_rows` runs, and their limits.

    >>> CleaningOptions(scrub_pii=True, max_chars=4096).near_dup_threshold
    0.85
    """

    normalize_unicode: bool = True
    strip_html: bool = True
    scrub_pii: bool = False
    min_chars: int = 1
    max_chars: int | None = None
    dedup_exact: bool = True
    near_dup_threshold: float | None = 0.85
    num_perm: int = 128

    def __post_init__(self) -> None:
        if self.min_chars < 0:
            raise ValueError(f"min_chars must be >= 0, got {self.min_chars}")
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars {self.max_chars} is below min_chars {self.min_chars}")
        threshold = self.near_dup_threshold
        if threshold is not None and not 0 < threshold <= 1:
            raise ValueError(f"near_dup_threshold must be in (0, 1], got {threshold}")
        if self.num_perm < 2:
            raise ValueError(f"num_perm must be >= 2, got {self.num_perm}")


@dataclass
class CleaningReport:
    """What `clean_rows` did. ``input_rows == output_rows + sum(dropped.values())``.

    `dropped` counts rows by reason (the first that applies: ``missing_field:<f>``,
    ``wrong_type:<f>``, ``empty_field:<f>``, ``too_short``, ``too_long``, ``exact_duplicate``,
    ``near_duplicate``, or ``not_a_dict`` for a row that is no mapping); `modified` (rows by
    pass) and `pii` (replaced occurrences by placeholder type) count the rows that were kept.

    >>> report = CleaningReport(input_rows=2, output_rows=1, dropped=Counter(too_short=1))
    >>> report.to_dict()["dropped"]
    {'too_short': 1}
    """

    input_rows: int = 0
    output_rows: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    modified: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict with the counters sorted by key."""
        return {
            "input_rows": self.input_rows,
            "output_rows": self.output_rows,
            "dropped": dict(sorted(self.dropped.items())),
            "modified": dict(sorted(self.modified.items())),
            "pii": dict(sorted(self.pii.items())),
        }


def _field_problem(row: Mapping[str, Any], text_fields: list[str], required: list[str]) -> str:
    """First missing field, then first wrongly typed one; "" when the row's fields are fine.

    Text fields must hold a str; None in an optional text field counts as absent (the
    `datasets` library fills absent columns with None). Other required fields: not None.

    >>> _field_problem({"text": 3}, ["text"], ["text"]), _field_problem({"text": "x"}, ["text"], [])
    ('wrong_type:text', '')
    """
    for name in required:
        if name not in row:
            return f"missing_field:{name}"
    for name in [*required, *(f for f in text_fields if f not in required)]:
        value = row.get(name)
        if name in text_fields:
            bad = not isinstance(value, str) and (value is not None or name in required)
        else:
            bad = value is None
        if bad:
            return f"wrong_type:{name}"
    return ""


def _strip_markup_counted(text: str, touched: set[str]) -> str:
    try:
        return strip_markup(text, strict=True)
    except MarkupError:
        touched.add("html_parse_failed")  # kept as it was; counted under `modified`
        return text


def _clean_text(text: str, options: CleaningOptions, touched: set[str], pii: Counter[str]) -> str:
    """One text value through the enabled passes, noting which ones changed it."""
    steps: list[tuple[bool, str, Callable[[str], str]]] = [
        (options.normalize_unicode, "unicode_normalized", normalize_unicode),
        (options.normalize_unicode, "whitespace_normalized", normalize_whitespace),
        (options.strip_html, "html_stripped", lambda value: _strip_markup_counted(value, touched)),
    ]
    for enabled, reason, function in steps:
        if enabled and (result := function(text)) != text:
            touched.add(reason)
            text = result
    if options.scrub_pii:
        text, counts = scrub_pii(text)
        if counts:
            touched.add("pii_redacted")
            pii.update(counts)
    return text


def _clean_row(
    row: Any, text_fields: list[str], required: list[str], options: CleaningOptions
) -> tuple[dict[str, Any] | str, set[str], Counter[str]]:
    """The cleaned copy of a row, or the reason to drop it; plus the passes and PII found."""
    touched: set[str] = set()
    pii: Counter[str] = Counter()
    if not isinstance(row, Mapping):
        return "not_a_dict", touched, pii
    if problem := _field_problem(row, text_fields, required):
        return problem, touched, pii
    cleaned = dict(row)
    for name in text_fields:
        if isinstance(row.get(name), str):
            cleaned[name] = _clean_text(row[name], options, touched, pii)
    for name in required:
        if name in text_fields and not cleaned[name].strip():
            return f"empty_field:{name}", touched, pii
    total = sum(len(cleaned[f]) for f in text_fields if isinstance(cleaned.get(f), str))
    if total < options.min_chars:
        return "too_short", touched, pii
    if options.max_chars is not None and total > options.max_chars:
        return "too_long", touched, pii
    return cleaned, touched, pii


def clean_rows(
    rows: Iterable[dict[str, Any]],
    *,
    text_fields: list[str],
    required_fields: list[str],
    options: CleaningOptions,
    report: CleaningReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield cleaned copies of the rows that pass, first occurrence of duplicates kept.

    Lazy: one row at a time; only the duplicate indexes grow. Per row: required fields
    present, typed and non-empty after cleaning; normalise, strip HTML, scrub PII; length
    limits on the text fields together; exact then near duplicates. Each dropped row is
    counted under one reason in `report` (which is updated as rows stream through).

    >>> report = CleaningReport()
    >>> rows = [{"text": "Hi&nbsp;there", "label": 1}, {"text": "Hi"}, {"text": 3, "label": 0}]
    >>> list(clean_rows(rows, text_fields=["text"], required_fields=["text", "label"],
    ...                 options=CleaningOptions(), report=report))
    [{'text': 'Hi there', 'label': 1}]
    >>> report.to_dict()["dropped"]
    {'missing_field:label': 1, 'wrong_type:text': 1}
    """
    for fields in (text_fields, required_fields):
        if isinstance(fields, str):
            raise TypeError(f"field lists must be lists of names, got the string {fields!r}")
    report = report if report is not None else CleaningReport()
    text_fields, required_fields = list(text_fields), list(required_fields)
    dedup = Deduper(
        exact=options.dedup_exact, threshold=options.near_dup_threshold, num_perm=options.num_perm
    )
    for row in rows:
        report.input_rows += 1
        cleaned, touched, pii = _clean_row(row, text_fields, required_fields, options)
        if isinstance(cleaned, dict):
            values = [v if isinstance(v := cleaned.get(f), str) else "" for f in text_fields]
            if reason := dedup.check(values):
                cleaned = reason
        if isinstance(cleaned, str):
            report.dropped[cleaned] += 1
            continue
        report.output_rows += 1
        report.modified.update(touched)
        report.pii.update(pii)
        yield cleaned
