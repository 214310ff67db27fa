"""What counts as a CJK character, once for the whole package (standard library only).

CJK here means the scripts written without spaces between words, or whose words are
best matched as substrings: Han ideographs, Japanese kana and Korean Hangul. Data
cleaning (dedup shingles), clustering and routing features, augmentation, label parsing
and text metrics all use these ranges, so a character is CJK everywhere or nowhere.

>>> has_cjk("GDP增长"), has_cjk("GDP growth")
(True, False)
"""

from __future__ import annotations

import re

__all__ = ["CJK_CLASS", "CJK_RANGES", "CJK_RE", "CJK_RUN_RE", "has_cjk", "is_cjk"]

# Planes 2 and 3 (U+20000-U+3FFFF) hold only Han extensions B-H and compatibility
# supplements: without them rare characters in names and classical text (𠀀, 𪚥) are not CJK.
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul Syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x3FFFF),  # Extensions B-H, Compatibility Ideographs Supplement
)

#: The ranges as the inside of a regex character class: ``f"[{CJK_CLASS}]"``.
CJK_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in CJK_RANGES)
#: One CJK character.
CJK_RE = re.compile(f"[{CJK_CLASS}]")
#: A run of consecutive CJK characters.
CJK_RUN_RE = re.compile(f"[{CJK_CLASS}]+")


def is_cjk(char: str) -> bool:
    """Whether the single character ``char`` is CJK (Han, kana or Hangul).

    >>> is_cjk("血"), is_cjk("𠀀"), is_cjk("㐀"), is_cjk("a"), is_cjk("，")
    (True, True, True, False, False)
    """
    code = ord(char)
    return any(low <= code <= high for low, high in CJK_RANGES)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds at least one CJK character.

    >>> has_cjk("患有hypertension"), has_cjk("hypertension")
    (True, False)
    """
    return CJK_RE.search(text) is not None
