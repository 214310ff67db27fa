"""Split long documents into overlapping token windows (``type: completion`` data).

Chunks are slices of the original *text*, cut where the tokenizer's offsets say a token
starts a new character: a byte-level tokenizer spends several tokens on one CJK
character, and a window never ends (or starts) inside such a character. The chunks,
minus each one's overlap with the previous chunk, concatenate back to the exact text.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass
from typing import Any

Row = dict[str, Any]

__all__ = ["ChunkReport", "chunk_rows", "chunk_spans", "chunk_text"]


@dataclass
class ChunkReport:
    """How many documents went in, how many chunks came out, and the longest document."""

    documents: int = 0
    chunks: int = 0
    longest_document_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the report."""
        return asdict(self)


def _check(window: int, overlap: int) -> None:
    if window < 1:
        raise ValueError(f"window must be >= 1 token, not {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must satisfy 0 <= overlap < window ({window}), not {overlap}")


def _offsets(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    try:
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
    except NotImplementedError as error:  # slow (Python) tokenizers have no offsets
        raise ValueError(
            "chunking needs a fast tokenizer (one that returns offset mappings)"
        ) from error
    return [(int(start), int(end)) for start, end in encoding["offset_mapping"]]


def chunk_spans(
    text: str, tokenizer: Any, *, window: int, overlap: int
) -> tuple[list[tuple[int, int]], int]:
    """Character spans ``(start, end)`` of the chunks of ``text``, and its token count.

    Token windows ``[s, e)`` hold at most ``window`` tokens; a cut is only made before a
    token that shares no character with the token before it, so a window may hold a
    little fewer tokens than ``window``, never more. The next window starts at the first
    such cut at or after ``e - overlap`` (later if needed for it to end after ``e``), so
    consecutive windows share exactly ``overlap`` tokens when cuts allow it (always when
    every token is a whole number of characters) and otherwise slightly fewer, never more.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        # With a byte-level tokenizer (one token per ASCII character):

        chunk_spans("abcdef", byte_tokenizer, window=4, overlap=1)  # ([(0, 4), (3, 6)], 6)
    """
    _check(window, overlap)
    if not text:
        return [], 0
    # Hand-written, not return_overflowing_tokens + stride: those windows are identical on
    # whole-character tokens but cut byte-level tokens inside a CJK character.
    offsets = _offsets(text, tokenizer)
    count = len(offsets)
    if count <= window:
        return [(0, len(text))], count

    # char[i]: where a chunk starting (or ending) before token i is cut in the text
    char = [0] * (count + 1)
    cuts = [0]
    for i in range(1, count):
        char[i] = min(len(text), max(char[i - 1], offsets[i][0]))
        if offsets[i][0] >= offsets[i - 1][1]:
            cuts.append(i)
    char[count] = len(text)
    cuts.append(count)

    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = count if start + window >= count else cuts[bisect_right(cuts, start + window) - 1]
        if end <= start:
            raise ValueError(
                f"window={window} is smaller than the {cuts[bisect_right(cuts, start)] - start} "
                f"tokens of the character at position {char[start]} ({text[char[start]]!r})"
            )
        spans.append((char[start], char[end]))
        if end == count:
            return spans, count
        # the next window must reach past `end` (else it would sit inside this one), so it
        # starts no earlier than `window` tokens before the cut that follows `end`
        after_end = cuts[bisect_right(cuts, end)]
        earliest = max(end - overlap, after_end - window, start + 1)
        start = cuts[bisect_left(cuts, earliest)]


def chunk_text(text: str, tokenizer: Any, *, window: int, overlap: int) -> list[str]:
    """Split ``text`` into pieces of at most ``window`` tokens sharing ``overlap`` tokens.

    Needs a fast tokenizer (offset mappings). A text of at most ``window`` tokens comes
    back as one chunk, an empty text as none. ``chunks[0] + chunks[1][len(overlap_1):]
    + ...`` is exactly ``text``, where ``overlap_i`` is the text shared by chunks i-1 and
    i (a suffix of the one, a prefix of the other); see :func:`chunk_spans` for the rules.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained("gpt2")
        chunk_text("one two three four five", tokenizer, window=3, overlap=1)  # ['one two three', ' three four five']
    """
    spans, _ = chunk_spans(text, tokenizer, window=window, overlap=overlap)
    return [text[start:end] for start, end in spans]


def chunk_rows(
    rows: list[Row], tokenizer: Any, *, field: str = "text", window: int, overlap: int
) -> tuple[list[Row], ChunkReport]:
    """Chunk ``rows[i][field]`` of every row; other fields are copied into each chunk.

    Each chunk row gets ``"_chunk"`` (its index within the document) and ``"_source_row"``
    (the document's index in ``rows``). A row whose ``field`` is missing or not a string
    raises ``ValueError``.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        rows = [{"text": "a long document ...", "source": "wiki"}]
        chunks, report = chunk_rows(rows, tokenizer, window=512, overlap=64)
        chunks[0]["_chunk"], chunks[0]["_source_row"], report.documents  # (0, 0, 1)
    """
    _check(window, overlap)
    out: list[Row] = []
    report = ChunkReport()
    for index, row in enumerate(rows):
        text = row.get(field) if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"row {index}: field {field!r} is missing or not a string")
        spans, tokens = chunk_spans(text, tokenizer, window=window, overlap=overlap)
        report.documents += 1
        report.longest_document_tokens = max(report.longest_document_tokens, tokens)
        for number, (start, end) in enumerate(spans):
            out.append({**row, field: text[start:end], "_chunk": number, "_source_row": index})
    report.chunks = len(out)
    return out, report
