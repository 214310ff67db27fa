"""HTML stripping (ft_plugin.data.cleaning.markup): tags, entities, broken HTML."""

from __future__ import annotations

import doctest

import pytest
from cleaning_helpers import run, texts

from ft_plugin.data import cleaning
from ft_plugin.data.cleaning import markup, strip_markup


def test_html_tags_entities_and_script_content() -> None:
    rows = [
        {"text": "<p>Fish &amp; chips</p><p>Price: &pound;5&nbsp;each</p>"},
        {"text": "Hello <b>world</b><script>alert('pwned')</script><style>b {}</style><!-- x -->!"},
        {"text": "<ul><li>One</li><li>Two</li></ul><table><tr><td>a</td><td>b</td></tr></table>"},
        {"text": "2 < 3 and 5 > 4, List<String> stays"},
        {"text": "AT&T and R&D"},
    ]
    out, report = run(rows)
    assert texts(out) == [
        "Fish & chips\nPrice: £5 each",
        "Hello world!",
        "One\nTwo\na b",
        "2 < 3 and 5 > 4, List<String> stays",
        "AT&T and R&D",
    ]
    assert report.modified == {"html_stripped": 3}


def test_strip_markup_is_lenient_with_broken_html() -> None:
    assert strip_markup("<p>unclosed <b>bold") == "unclosed bold"
    assert strip_markup("a <script>never closed") == "a"
    assert strip_markup("<div>x <!-- note --> y &unknown; z &#169;</div>") == "x y &unknown; z ©"


def test_an_html_parser_failure_keeps_the_text_and_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_feed(self, data):  # noqa: ANN001, ANN202
        raise AssertionError("unknown status keyword")

    monkeypatch.setattr(markup._TextExtractor, "feed", broken_feed)
    with pytest.raises(cleaning.MarkupError, match="AssertionError: unknown status keyword"):
        strip_markup("<p>x</p>", strict=True)
    rows = [{"text": "<p>kept as written</p>"}, {"text": "plain text, no markup"}]
    out, report = run(rows)
    assert [r["text"] for r in out] == ["<p>kept as written</p>", "plain text, no markup"]
    assert report.modified["html_parse_failed"] == 1


@pytest.mark.timeout(20)
def test_strip_markup_stays_linear_on_unclosed_brackets() -> None:
    code = "for (i = 0; i<n; i++) total += x[i];\n" * 5000  # 190 kB, no ">" anywhere
    assert strip_markup(code + "<b>done</b>") == code + "done"
    assert strip_markup("<p>" + "a<b " * 20000) == ("a<b " * 20000).strip()


def test_docstring_examples() -> None:
    assert doctest.testmod(markup).failed == 0
