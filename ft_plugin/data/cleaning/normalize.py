"""Unicode and whitespace normalisation: NFKC with Chinese punctuation kept, tidy spacing.

>>> normalize_text("Ｈｉ\\u200b  there\\r\\n")
'Hi there'
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text", "normalize_unicode", "normalize_whitespace"]

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad\u180e"), None)
# C0/C1 controls except tab and the line breaks handled by normalize_whitespace; lone surrogates
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")

# Full-width punctuation is how Chinese is written: NFKC would turn "，" into ",", and a
# model trained on that writes ASCII commas in Chinese. These survive normalisation.
_CJK_PUNCTUATION = "，！？；：（）～"
_PROTECT = {ord(c): chr(0xE000 + i) for i, c in enumerate(_CJK_PUNCTUATION)}
_RESTORE = {ord(v): k for k, v in ((c, _PROTECT[ord(c)]) for c in _CJK_PUNCTUATION)}


def normalize_unicode(text: str) -> str:
    """NFKC (CJK punctuation kept), then drop zero-width and control characters, lone surrogates.

    >>> normalize_unicode("ＡＩ，\\u200bok\\x07")
    'AI，ok'
    """
    if not unicodedata.is_normalized("NFKC", text):
        protected = text.translate(_PROTECT)
        text = unicodedata.normalize("NFKC", protected).translate(_RESTORE)
    return _CONTROLS.sub("", text.translate(_ZERO_WIDTH))


def normalize_whitespace(text: str) -> str:
    """One kind of newline, single spaces, stripped lines, at most one blank line.

    >>> normalize_whitespace("  a \\t b\\r\\n\\n\\n\\nc  ")
    'a b\\n\\nc'
    """
    text = _SPACES.sub(" ", _LINE_BREAKS.sub("\n", text))
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()


def normalize_text(text: str) -> str:
    """NFKC, no zero-width or control characters, normalised newlines and spaces, stripped.

    Full-width CJK punctuation (``，！？；：（）～``) is kept: NFKC would make it ASCII.

    >>> normalize_text("\\uff28\\uff49\\u200b\\u00a0 there\\r\\n\\tＡＩ  ")
    'Hi there\\nAI'
    """
    return normalize_whitespace(normalize_unicode(text))
