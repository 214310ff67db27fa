"""The cleaning pipeline (ft_plugin.data.cleaning.clean_rows): fields, lengths, streaming, report."""

from __future__ import annotations

import copy
import doctest
import inspect
import itertools
from typing import Any

import pytest
from cleaning_helpers import ALPACA, ALPACA_REQUIRED, run, texts

from ft_plugin.data import cleaning
from ft_plugin.data.cleaning import CleaningOptions, CleaningReport, clean_rows


def test_missing_fields() -> None:
    rows = [
        {"instruction": "Q1", "output": "A1"},  # optional input absent: fine
        {"output": "A2"},
        {"instruction": "Q3"},
        {},
        {"instruction": "Q5", "input": "ctx", "output": "A5"},
    ]
    out, report = run(rows, ALPACA, ALPACA_REQUIRED)
    assert out == [rows[0], rows[4]]
    assert report.dropped == {"missing_field:instruction": 2, "missing_field:output": 1}


def test_wrong_types_in_text_and_label_fields() -> None:
    rows: list[Any] = [
        {"text": ["a list"], "label": 1},
        {"text": {"a": "dict"}, "label": 1},
        {"text": None, "label": 1},
        {"text": 42, "label": 1},
        {"text": 4.2, "label": 1},
        {"text": True, "label": 1},
        {"text": "labelled None", "label": None},
        {"text": "integer label", "label": 0},
        {"text": "float label", "label": 2.5},
        {"text": "string label", "label": "positive"},
        None,
        ["text", "label"],
        "text",
    ]
    out, report = run(rows, required=["text", "label"])
    assert out == rows[7:10]
    assert report.dropped == {"wrong_type:text": 6, "wrong_type:label": 1, "not_a_dict": 3}


def test_optional_text_field_types() -> None:
    rows = [
        {"instruction": "Q1", "input": None, "output": "A1"},  # None: absent (datasets pads so)
        {"instruction": "Q2", "input": ["x"], "output": "A2"},
        {"instruction": "Q3", "input": 7, "output": "A3"},
        {"instruction": "Q4", "input": "", "output": "A4"},  # optional field may be empty
    ]
    out, report = run(rows, ALPACA, ALPACA_REQUIRED)
    assert out == [rows[0], rows[3]]
    assert report.dropped == {"wrong_type:input": 2}


def test_empty_fields_after_cleaning() -> None:
    rows = [
        {"instruction": "", "output": "A"},
        {"instruction": "   \t ", "output": "A"},
        {"instruction": "\u200b\u200b", "output": "A"},
        {"instruction": "<p> &nbsp; </p>", "output": "A"},
        {"instruction": "<script>alert(1)</script>", "output": "A"},
        {"instruction": "Q", "output": ""},
        {"instruction": "Q", "input": "", "output": "A"},
    ]
    out, report = run(rows, ALPACA, ALPACA_REQUIRED)
    assert out == [rows[6]]
    assert report.dropped == {"empty_field:instruction": 5, "empty_field:output": 1}


def test_no_text_at_all_is_too_short() -> None:
    out, report = run([{"text": ""}, {"text": "x"}], required=[])
    assert texts(out) == ["x"]
    assert report.dropped == {"too_short": 1}


def test_length_limits_on_all_text_fields_after_cleaning() -> None:
    rows = [
        {"instruction": "abcd", "output": "efghi"},  # 9
        {"instruction": "abcde", "output": "fghij"},  # 10
        {"instruction": "abcdefghij", "output": "klmnopqrst"},  # 20
        {"instruction": "abcdefghij", "output": "klmnopqrstu"},  # 21
        {"instruction": "   abcd   ", "output": "<b>efghi</b>"},  # 9 once cleaned
        {"instruction": "血压多少正常", "output": "一百二十以下"},  # 12 characters
    ]
    out, report = run(rows, ALPACA, ALPACA_REQUIRED, min_chars=10, max_chars=20)
    assert out == [rows[1], rows[2], rows[5]]
    assert report.dropped == {"too_short": 2, "too_long": 1}


def test_passes_can_be_switched_off() -> None:
    rows = [{"text": "  <b>Ｘ</b>\u200b jane@example.com  "}]
    out, report = run(rows, normalize_unicode=False, strip_html=False)
    assert out == rows and out[0] is not rows[0]
    assert report.modified == {} and report.pii == {}


def test_clean_rows_is_lazy_on_an_endless_generator() -> None:
    pulled = 0

    def endless() -> Any:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield {"text": f"Row number {i // 2} is about topic {i // 2 * 7}."}

    assert inspect.isgeneratorfunction(clean_rows)
    report = CleaningReport()
    rows = clean_rows(
        endless(),
        text_fields=["text"],
        required_fields=["text"],
        options=CleaningOptions(),
        report=report,
    )
    first = list(itertools.islice(rows, 3))
    assert texts(first) == [f"Row number {i} is about topic {i * 7}." for i in range(3)]
    assert pulled == 5  # rows 0, 0, 1, 1, 2: nothing read ahead
    assert report.to_dict() == {
        "input_rows": 5,
        "output_rows": 3,
        "dropped": {"exact_duplicate": 2},
        "modified": {},
        "pii": {},
    }


def test_rows_are_copied_never_mutated() -> None:
    rows = [
        {"text": " <b>Hi</b> jane@example.com ", "meta": {"tags": ["a"]}},
        {"text": " <b>Hi</b> jane@example.com ", "meta": {"tags": ["a"]}},
        {"text": None, "meta": {}},
    ]
    before = copy.deepcopy(rows)
    out, _ = run(rows, scrub_pii=True)
    assert rows == before
    assert out == [{"text": "Hi [EMAIL]", "meta": {"tags": ["a"]}}]
    assert out[0] is not rows[0]


def test_report_accumulates_over_calls_and_to_dict_is_sorted() -> None:
    report = CleaningReport()
    options = CleaningOptions()
    fields: dict[str, Any] = {"text_fields": ["text"], "required_fields": ["text"]}
    for batch in ([{"text": "a b c"}, {"text": ""}], [{"text": "a b c"}, {"other": 1}]):
        list(clean_rows(batch, **fields, options=options, report=report))
    assert report.to_dict() == {
        "input_rows": 4,
        "output_rows": 2,  # indexes are per call: the second "a b c" is kept
        "dropped": {"empty_field:text": 1, "missing_field:text": 1},
        "modified": {},
        "pii": {},
    }
    assert list(clean_rows([{"text": "x"}], **fields, options=options)) == [{"text": "x"}]


@pytest.mark.parametrize(
    "options",
    [
        {"min_chars": -1},
        {"min_chars": 10, "max_chars": 5},
        {"near_dup_threshold": 0.0},
        {"near_dup_threshold": 1.5},
        {"num_perm": 1},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CleaningOptions(**options)


def test_field_names_must_be_lists() -> None:
    rows = clean_rows([], text_fields="text", required_fields=[], options=CleaningOptions())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        next(rows)


def test_docstring_examples() -> None:
    assert doctest.testmod(cleaning).failed == 0
