"""Unicode and whitespace (ft_plugin.data.cleaning.normalize)."""

from __future__ import annotations

import doctest

from cleaning_helpers import run, texts

from ft_plugin.data.cleaning import normalize, normalize_text


def test_unicode_and_whitespace_normalisation() -> None:
    rows = [
        {"text": "Ｆｕｌｌ\u3000ｗｉｄｔｈ １２３ ＡＢＣ"},  # NFKC only
        {"text": "zero\u200bwidth\ufeff text"},  # zero-width only
        {"text": "non\u00a0breaking\u00a0\u00a0space"},  # NFKC, then two spaces collapse
        {"text": "  tabs\tand\r\nCRLF  \n\n\n\nend  "},  # whitespace only
        {"text": "clean ASCII text"},
    ]
    out, report = run(rows)
    assert texts(out) == [
        "Full width 123 ABC",
        "zerowidth text",
        "non breaking space",
        "tabs and\nCRLF\n\nend",
        "clean ASCII text",
    ]
    assert report.modified == {"unicode_normalized": 3, "whitespace_normalized": 2}


def test_nfkc_keeps_full_width_cjk_punctuation() -> None:
    assert normalize_text("你好，世界！（测试）\u3000ＯＫ？") == "你好，世界！（测试） OK？"
    assert normalize_text("句号。顿号、不变") == "句号。顿号、不变"


def test_docstring_examples() -> None:
    assert doctest.testmod(normalize).failed == 0
