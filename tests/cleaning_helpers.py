"""Shared rows and a runner for the cleaning tests (tests/test_cleaning_*.py)."""

from __future__ import annotations

from typing import Any

from ft_plugin.data.cleaning import CleaningOptions, CleaningReport, clean_rows

ALPACA = ["instruction", "input", "output"]


ALPACA_REQUIRED = ["instruction", "output"]


def run(
    rows: list[Any],
    text_fields: list[str] | None = None,
    required: list[str] | None = None,
    **options: Any,
) -> tuple[list[dict[str, Any]], CleaningReport]:
    report = CleaningReport()
    out = list(
        clean_rows(
            rows,
            text_fields=text_fields or ["text"],
            required_fields=["text"] if required is None else required,
            options=CleaningOptions(**options),
            report=report,
        )
    )
    assert report.input_rows == len(rows)
    assert report.output_rows == len(out)
    assert report.input_rows == report.output_rows + sum(report.dropped.values())
    return out, report


def texts(rows: list[dict[str, Any]]) -> list[str]:
    return [row["text"] for row in rows]
