"""Token-window chunking: round trip, overlap and CJK character boundaries."""

from __future__ import annotations

import copy

import pytest
from tiny import tiny_tokenizer

from ft_plugin.data.chunking import ChunkReport, chunk_rows, chunk_spans, chunk_text

ENGLISH = (
    "Hypertension is a long-term condition in which the blood pressure in the arteries is "
    "persistently elevated. It usually does not cause symptoms, but it is a major risk factor "
    "for stroke, heart failure and chronic kidney disease."
)
CHINESE = (
    "高血压是一种常见的慢性疾病，指动脉血压持续升高。"
    "它通常没有明显症状，但却是中风、心力衰竭和慢性肾病的主要危险因素。"
)
MIXED = "Blood pressure 血压 is measured in mmHg（毫米汞柱）. 🙂 Done."


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _rebuild(text: str, spans: list[tuple[int, int]]) -> str:
    out, covered = "", 0
    for start, end in spans:
        out += text[max(start, covered) : end]
        covered = end
    return out


@pytest.mark.parametrize("text", [ENGLISH, CHINESE, MIXED])
@pytest.mark.parametrize(("window", "overlap"), [(16, 0), (16, 4), (10, 9), (7, 2), (64, 16)])
def test_round_trip_and_window_limits(tokenizer, text, window, overlap):
    spans, count = chunk_spans(text, tokenizer, window=window, overlap=overlap)
    chunks = chunk_text(text, tokenizer, window=window, overlap=overlap)
    assert chunks == [text[start:end] for start, end in spans]
    assert count == _tokens(tokenizer, text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert _rebuild(text, spans) == text
    for (start, end), (next_start, next_end) in zip(spans, spans[1:], strict=False):
        assert start < next_start <= end < next_end  # progress, no gap
        shared = text[next_start:end]
        # the overlap is a suffix of one chunk and a prefix of the next
        assert text[start:end].endswith(shared) and text[next_start:next_end].startswith(shared)
        assert _tokens(tokenizer, shared) <= overlap
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for start, end in spans:
        chunk_ids = tokenizer(text[start:end], add_special_tokens=False)["input_ids"]
        assert 0 < len(chunk_ids) <= window
        # the chunk's tokens are exactly a window of the document's tokens
        first = _tokens(tokenizer, text[:start])
        assert ids[first : first + len(chunk_ids)] == chunk_ids


@pytest.mark.parametrize(("window", "overlap"), [(16, 0), (16, 5), (12, 11), (9, 3)])
def test_english_overlap_is_exact(tokenizer, window, overlap):
    spans, count = chunk_spans(ENGLISH, tokenizer, window=window, overlap=overlap)
    assert count == len(ENGLISH)  # byte-level: one token per ASCII character
    for (start, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end - start == window  # full windows except the last
        assert end - next_start == overlap
    stride = window - overlap
    assert len(spans) == 1 + -(-(len(ENGLISH) - window) // stride)


def test_chinese_windows_snap_to_character_boundaries(tokenizer):
    # one Chinese character is 3 tokens: window 16 holds 5 characters (15 tokens), and an
    # overlap of 4 tokens snaps to one character (3 tokens)
    text = "一二三四五六七八九十甲乙丙丁戊己"
    assert _tokens(tokenizer, text) == 48
    assert chunk_text(text, tokenizer, window=16, overlap=4) == [
        "一二三四五",
        "五六七八九",
        "九十甲乙丙",
        "丙丁戊己",
    ]
    assert chunk_text(text, tokenizer, window=6, overlap=0)[:2] == ["一二", "三四"]
    # overlap smaller than one character snaps to no overlap rather than splitting it
    assert chunk_text(text, tokenizer, window=7, overlap=2)[:2] == ["一二", "三四"]
    assert chunk_text(text, tokenizer, window=3, overlap=2) == list(text)
    with pytest.raises(ValueError, match="smaller than the 3 tokens of the character"):
        chunk_text(text, tokenizer, window=2, overlap=1)


def test_short_texts_and_invalid_arguments(tokenizer):
    assert chunk_text("short", tokenizer, window=5, overlap=2) == ["short"]
    assert chunk_text("高血压", tokenizer, window=9, overlap=0) == ["高血压"]
    assert chunk_text("", tokenizer, window=4, overlap=0) == []
    for window, overlap in [(4, 4), (4, 5), (4, -1), (0, 0)]:
        with pytest.raises(ValueError, match="overlap|window"):
            chunk_text(ENGLISH, tokenizer, window=window, overlap=overlap)


def test_chunk_rows_copies_fields_and_reports(tokenizer):
    rows = [
        {"text": ENGLISH, "source": "en-wiki"},
        {"text": "tiny", "source": "note"},
        {"text": CHINESE, "source": "zh-wiki"},
    ]
    before = copy.deepcopy(rows)
    out, report = chunk_rows(rows, tokenizer, window=40, overlap=8)
    assert rows == before
    assert isinstance(report, ChunkReport)
    expected = [chunk_text(row["text"], tokenizer, window=40, overlap=8) for row in rows]
    assert report.to_dict() == {
        "documents": 3,
        "chunks": sum(len(chunks) for chunks in expected),
        "longest_document_tokens": max(_tokens(tokenizer, ENGLISH), _tokens(tokenizer, CHINESE)),
    }
    assert [row["text"] for row in out] == [chunk for chunks in expected for chunk in chunks]
    assert [row["_source_row"] for row in out] == [
        index for index, chunks in enumerate(expected) for _ in chunks
    ]
    assert [row["_chunk"] for row in out if row["_source_row"] == 0] == list(
        range(len(expected[0]))
    )
    assert all(row["source"] == rows[row["_source_row"]]["source"] for row in out)

    out, report = chunk_rows([{"body": "abcdef"}], tokenizer, field="body", window=4, overlap=1)
    assert out == [
        {"body": "abcd", "_chunk": 0, "_source_row": 0},
        {"body": "def", "_chunk": 1, "_source_row": 0},
    ]
    with pytest.raises(ValueError, match="row 1: field 'text' is missing"):
        chunk_rows([{"text": "ok"}, {"body": "x"}], tokenizer, window=4, overlap=0)


def test_overflowing_tokens_agree_on_whole_characters_but_split_cjk(tokenizer):
    """Why chunk_spans is hand-written: the tokenizer's own windows cut inside characters."""

    def overflow_spans(text, window, overlap):
        encoding = tokenizer(
            text, add_special_tokens=False, truncation=True, max_length=window, stride=overlap,
            return_overflowing_tokens=True, return_offsets_mapping=True,
        )  # fmt: skip
        return [(offsets[0][0], offsets[-1][1]) for offsets in encoding["offset_mapping"]]

    english = "The quick brown fox jumps over the lazy dog " * 3
    assert chunk_spans(english, tokenizer, window=16, overlap=4)[0] == overflow_spans(
        english, 16, 4
    )
    chinese = "一二三四五六七八"  # 3 byte tokens per character
    assert chunk_spans(chinese, tokenizer, window=7, overlap=2)[0] == [
        (0, 2),
        (2, 4),
        (4, 6),
        (6, 8),
    ]
    assert overflow_spans(chinese, 7, 2)[:2] == [(0, 3), (1, 4)]  # 7 tokens: 2⅓ characters
