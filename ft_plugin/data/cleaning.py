"""Row cleaning passes for domain datasets: normalise, strip HTML, scrub PII, filter, deduplicate.

`clean_rows` streams rows (dicts) through the passes and counts everything it does in a
`CleaningReport`: every dropped row has exactly one reason, and nothing raises on bad row
content. English and CJK text both work.

PII patterns (`scrub_pii`), applied in this order, each replaced by a typed placeholder:

- ``[EMAIL]``: ASCII addresses ``local@domain.tld``.
- ``[ACCOUNT]``: IBANs in upper case, grouped by 4 or not, valid mod-97 checksum; 8-17 digits
  right after ``account`` / ``acct`` / ``a/c`` (+ ``no.``, ``number``, ``#``, ``:``) or
  账号 / 帐号 / 账户 (the keyword is kept, the digits are replaced).
- ``[NATIONAL_ID]``: Chinese resident IDs (18 chars, valid birth date and ISO 7064 check
  digit); US SSNs ``123-45-6789`` (invalid areas 000/666/9xx skipped), or 9 digits after ``SSN``.
- ``[DOB]``: a date after DOB / date of birth / birth date / born on / 出生日期 / 出生于 / 生日
  (ISO, ``12/03/1985``, ``12.03.85``, ``19850312``, ``12 March 1985``, ``March 12, 1985``,
  ``1985年3月12日``); the keyword is kept.
- ``[CARD]``: 13-19 digits, plain or grouped by 4 (Amex 4-6-5), first digit 2-6, Luhn-valid.
- ``[PHONE]``: ``+`` and 8-15 digits (``+44 20 7946 0958``, ``+86 138 1234 5678``);
  ``(555) 123-4567``, ``555-123-4567``, ``1-800-555-0199``; Chinese mobiles ``13812345678``.

Known limits: Latin-script, ASCII patterns only (no IDN e-mails, lower-case IBANs, other
countries' IDs, landlines without ``+``, space-separated US numbers, spelled-out numbers);
a Luhn-valid 13-19 digit order number still reads as a card (about 1 in 10 random ones)
and an 11-digit number starting 13-19 as a Chinese mobile; an account number is only
found right after its keyword and a date of birth only after one of the listed keywords.
Years, amounts, percentages, dosages, clause numbers and other short numbers never match.

Near duplicates: MinHash (datasketch) over the cleaned text fields; shingles are lower-cased
word 3-grams for non-CJK text plus CJK characters: single characters when the row holds
fewer than 100 CJK characters (so that 1-2 changed characters in a 30-character Chinese
sentence keep Jaccard above 0.85), character bigrams from 100 on (single characters
would make long unrelated texts look alike). LSH finds candidates, and a row is dropped
when its estimated Jaccard with a kept row reaches the threshold. Exact duplicates: same
blake2b hash of the cleaned text fields (other fields, such as labels, are not compared).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasketch import MinHash

__all__ = [
    "CleaningOptions",
    "CleaningReport",
    "clean_rows",
    "normalize_text",
    "scrub_pii",
    "strip_markup",
]

CJK_BIGRAMS_FROM = 100  # CJK characters in a row from which CJK shingles are bigrams


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


# --- Unicode and whitespace ----------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad\u180e"), None)
# C0/C1 controls except tab and the line breaks handled by _whitespace; lone surrogates
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


# Full-width punctuation is how Chinese is written: NFKC would turn "，" into ",", and a
# model trained on that writes ASCII commas in Chinese. These survive normalisation.
_CJK_PUNCTUATION = "，！？；：（）～"
_PROTECT = {ord(c): chr(0xE000 + i) for i, c in enumerate(_CJK_PUNCTUATION)}
_RESTORE = {ord(v): k for k, v in ((c, _PROTECT[ord(c)]) for c in _CJK_PUNCTUATION)}


def _unicode(text: str) -> str:
    """NFKC (CJK punctuation kept), then drop zero-width and control characters, lone surrogates."""
    if not unicodedata.is_normalized("NFKC", text):
        protected = text.translate(_PROTECT)
        text = unicodedata.normalize("NFKC", protected).translate(_RESTORE)
    return _CONTROLS.sub("", text.translate(_ZERO_WIDTH))


def _whitespace(text: str) -> str:
    """One kind of newline, single spaces, stripped lines, at most one blank line."""
    text = _SPACES.sub(" ", _LINE_BREAKS.sub("\n", text))
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()


def normalize_text(text: str) -> str:
    """NFKC, no zero-width or control characters, normalised newlines and spaces, stripped.

    Full-width CJK punctuation (``，！？；：（）～``) is kept: NFKC would make it ASCII.

    >>> normalize_text("\\uff28\\uff49\\u200b\\u00a0 there\\r\\n\\tＡＩ  ")
    'Hi there\\nAI'
    """
    return _whitespace(_unicode(text))


# --- HTML ----------------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    """a abbr address area article aside audio b base bdi bdo blockquote body br button canvas
    caption center cite code col colgroup data datalist dd del details dfn dialog div dl dt em
    embed fieldset figcaption figure font footer form h1 h2 h3 h4 h5 h6 head header hr html i
    iframe img input ins kbd label legend li link main map mark meta meter nav noscript object
    ol optgroup option output p param picture pre progress q rp rt ruby s samp script section
    select small source span strike strong style sub summary sup svg table tbody td template
    textarea tfoot th thead time title tr track tt u ul var video wbr""".split()  # noqa: SIM905
)
_BLOCK_TAGS = frozenset(
    """address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3
    h4 h5 h6 header hr li main nav ol p pre section table tbody tfoot thead tr ul""".split()  # noqa: SIM905
)
_CELL_TAGS = frozenset({"td", "th"})
_HIDDEN_TAGS = frozenset({"script", "style", "template"})


class _TextExtractor(HTMLParser):
    """Text of an HTML fragment: entities decoded, script/style dropped, blocks on new lines.

    Tags that are not HTML elements (``List<String>``, ``x<y and z>w``) are kept as text.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        else:
            self._tag(tag, self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        else:
            self._tag(tag, f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)

    def _tag(self, tag: str, raw: str) -> None:
        if self.hidden:
            return
        if tag in _BLOCK_TAGS:
            if self.parts and not self.parts[-1].endswith("\n"):
                self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")
        elif tag not in _HTML_TAGS:
            self.parts.append(raw)


_TAG = r"""<(?:[a-zA-Z?]|/[a-zA-Z]|![a-zA-Z])(?:[^<>"']|"[^<"]*"|'[^<']*')*>"""
_TAG_OR_BRACKET = re.compile(f"{_TAG}|<")
_COMMENT_TAG_OR_BRACKET = re.compile(f"<!--.*?-->|{_TAG}|<", re.DOTALL)


def _escape_stray_brackets(text: str) -> str:
    """Escape each "<" that opens no complete tag or comment, in linear time.

    `HTMLParser` rescans the rest of the text for every unclosed tag, which is quadratic
    on text like ``a<b`` repeated; after this it only ever sees complete tags.
    """

    def keep(match: re.Match[str]) -> str:
        return "&lt;" if match.group() == "<" else match.group()

    split = text.rfind("-->") + 3 if "-->" in text else 0  # no comment closes after this
    head = _COMMENT_TAG_OR_BRACKET.sub(keep, text[:split])
    return head + _TAG_OR_BRACKET.sub(keep, text[split:])


class MarkupError(ValueError):
    """`html.parser` failed on a text (strict ``strip_markup``)."""


def strip_markup(text: str, *, strict: bool = False) -> str:
    """Text without HTML tags, comments and script/style contents, entities decoded.

    Uses `html.parser`; block elements become line breaks and whitespace is normalised.
    Text without ``<`` or ``&`` is returned unchanged; a ``<`` that opens no complete tag,
    and tags that are not HTML elements (``List<String>``), stay as they are. Should the
    parser fail, the text is returned as it was, or, with ``strict``, ``MarkupError`` is
    raised (the cleaning pass counts those rows in its report).

    >>> strip_markup("<p>Fish &amp; chips&nbsp;<b>now</b></p><script>x()</script><p>2 < 3</p>")
    'Fish & chips now\\n2 < 3'
    """
    if "<" not in text and "&" not in text:
        return text
    parser = _TextExtractor()
    try:
        parser.feed(_escape_stray_brackets(text))
        parser.close()
    except Exception as exc:  # the parser is lenient, but must never fail a row
        if strict:
            raise MarkupError(f"{type(exc).__name__}: {exc}") from exc
        return text
    return _whitespace("".join(parser.parts))


def _strip_markup_counted(text: str, touched: set[str]) -> str:
    try:
        return strip_markup(text, strict=True)
    except MarkupError:
        touched.add("html_parse_failed")  # kept as it was; counted under `modified`
        return text


# --- PII -----------------------------------------------------------------------------------

_A = re.ASCII
_I = re.ASCII | re.IGNORECASE
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", _A)
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _A)
_CN_ID = re.compile(
    r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])",
    _A,
)
_SSN = re.compile(
    r"(?<![0-9-])(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9]|-[0-9])", _A
)
_SSN_KEYWORD = re.compile(
    r"(?P<key>\b(?:SSN|social security (?:number|no\.?))\s*[:#]?\s*)"
    r"(?!000|666|9)[0-9]{3}[ -]?(?!00)[0-9]{2}[ -]?(?!0000)[0-9]{4}(?![0-9])",
    _I,
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = (
    r"(?:[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
    r"|[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{4}|[0-9]{2})"
    r"|(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    rf"|[0-9]{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+[0-9]{{4}}"
    rf"|{_MONTH}\s+[0-9]{{1,2}}(?:st|nd|rd|th)?,?\s+[0-9]{{4}}"
    r"|[0-9]{4}\s*年\s*[0-9]{1,2}\s*月(?:\s*[0-9]{1,2}\s*[日号])?)"
)
_DOB = re.compile(
    r"(?P<key>(?:\b(?:DOB|D\.O\.B\.?|date of birth|birth ?date|born on)|出生日期|出生于|生日)"
    rf"\s*(?:[:：=]|is|was|是|为)?\s*){_DATE}(?![0-9])",
    _I,
)
_ACCOUNT_KEYWORD = re.compile(
    r"(?P<key>(?:\b(?:account|acct|a/c)\b\.?(?:\s*(?:number|num|no)\b\.?|\s*#)?(?:\s*is)?"
    r"|账号|帐号|账户|帐户|帳號|帳戶)\s*[:#：]?\s*(?:为|是)?\s*)"
    r"(?<![0-9])[0-9](?:[ -]?[0-9]){7,16}(?![0-9]|[ -][0-9])",
    _I,
)
_CARD = re.compile(r"(?<![0-9])(?<![0-9][ -])[0-9](?:[ -]?[0-9]){12,18}(?![0-9]|[ -][0-9])", _A)
_PHONE_INTL = re.compile(r"(?<![\w+])\+[0-9](?:[ .()-]{0,2}[0-9]){7,14}(?![0-9])", _A)
_PHONE_US = re.compile(
    r"(?<![\w.-])(?:1[ .-])?(?:\([0-9]{3}\) ?|[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}"
    r"(?![0-9]|[.-][0-9])",
    _A,
)
_PHONE_CN = re.compile(
    r"(?<![\w+])(?<![0-9][ -])1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9]|[ -][0-9])", _A
)

Handler = Callable[[re.Match[str]], tuple[str, str] | None]  # None, or (kept before, after)


def _whole(match: re.Match[str]) -> tuple[str, str]:
    return "", ""


def _after_key(match: re.Match[str]) -> tuple[str, str]:
    return match["key"], ""


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _iban(match: re.Match[str]) -> tuple[str, str] | None:
    """Valid IBAN, also when the match took in a trailing 4-character word."""
    text = head = match.group()
    for _ in range(3):
        if _iban_ok(head.replace(" ", "")):
            return "", text[len(head) :]
        if " " not in head:
            break
        head = head.rsplit(" ", 1)[0]
    return None


def _cn_id(match: re.Match[str]) -> tuple[str, str] | None:
    digits = match.group().upper()
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(digits[:17], weights, strict=True))
    return ("", "") if "10X98765432"[total % 11] == digits[17] else None


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card(match: re.Match[str]) -> tuple[str, str] | None:
    groups = [len(g) for g in re.split(r"[ -]", match.group())]
    digits = re.sub(r"[ -]", "", match.group())
    grouped = len(groups) == 1 or groups in ([4, 6, 5], [4, 6, 4])
    grouped = grouped or (set(groups[:-1]) == {4} and 1 <= groups[-1] <= 4)
    if grouped and digits[0] in "23456" and _luhn_ok(digits):
        return "", ""
    return None


_PII_RULES: tuple[tuple[str, re.Pattern[str], Handler], ...] = (
    ("EMAIL", _EMAIL, _whole),
    ("ACCOUNT", _IBAN, _iban),
    ("NATIONAL_ID", _CN_ID, _cn_id),
    ("NATIONAL_ID", _SSN, _whole),
    ("NATIONAL_ID", _SSN_KEYWORD, _after_key),
    ("DOB", _DOB, _after_key),
    ("ACCOUNT", _ACCOUNT_KEYWORD, _after_key),
    ("CARD", _CARD, _card),
    ("PHONE", _PHONE_INTL, _whole),
    ("PHONE", _PHONE_US, _whole),
    ("PHONE", _PHONE_CN, _whole),
)


def scrub_pii(text: str) -> tuple[str, Counter[str]]:
    """Replace PII with typed placeholders; returns the text and the replacements by type.

    >>> scrub_pii("Mail bob@example.com or call +44 20 7946 0958; dose 500 mg in 2024.")
    ('Mail [EMAIL] or call [PHONE]; dose 500 mg in 2024.', Counter({'EMAIL': 1, 'PHONE': 1}))
    """
    counts: Counter[str] = Counter()
    if not any(char.isdigit() for char in text) and "@" not in text:
        return text, counts

    def replace(label: str, handler: Handler, match: re.Match[str]) -> str:
        kept = handler(match)
        if kept is None:
            return match.group()
        counts[label] += 1
        return f"{kept[0]}[{label}]{kept[1]}"

    for label, pattern, handler in _PII_RULES:
        text = pattern.sub(lambda m, lb=label, h=handler: replace(lb, h, m), text)
    return text, counts


# --- Duplicates ----------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_WORD = re.compile(r"[^\W_]+")


def _shingles(text: str) -> set[str]:
    """Lower-cased word 3-grams of the non-CJK text, plus CJK characters (bigrams if long)."""
    runs = _CJK_RUN.findall(text)
    n = 1 if sum(map(len, runs)) < CJK_BIGRAMS_FROM else 2
    out = {"c:" + run[i : i + n] for run in runs for i in range(max(len(run) - n + 1, 1))}
    words = _WORD.findall(_CJK_RUN.sub(" ", text).lower())
    if words:
        out.update("w:" + " ".join(words[i : i + 3]) for i in range(max(len(words) - 2, 1)))
    return out


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows finding >= 95% of the pairs 0.05 below the threshold, fewest candidates."""
    target = max(threshold - 0.05, 0.01)
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - target**rows) ** bands >= 0.95:
            return bands, rows
    return num_perm, 1


class _Deduper:
    """Exact (blake2b of the cleaned text fields) and near (MinHash LSH) duplicate indexes."""

    def __init__(self, options: CleaningOptions) -> None:
        self.exact = options.dedup_exact
        self.seen: set[bytes] = set()
        self.threshold = options.near_dup_threshold
        self.num_perm = options.num_perm
        self.signatures: list[Any] = []  # LSH key -> MinHash hash values of a kept row
        self.lsh = self.empty = None
        if self.threshold is not None:
            try:
                from datasketch import MinHash, MinHashLSH
            except ImportError as error:
                raise ImportError(
                    "near-duplicate detection needs datasketch: pip install 'ft-plugin[data]'"
                ) from error
            params = _lsh_params(self.threshold, self.num_perm)
            self.lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm, params=params)
            self.empty = MinHash(num_perm=self.num_perm, seed=1)  # copies share its permutations

    def _minhash(self, text: str) -> MinHash | None:
        shingles = _shingles(text)
        if not shingles or self.empty is None:
            return None
        minhash = self.empty.copy()
        minhash.update_batch([s.encode("utf-8", "surrogatepass") for s in shingles])
        return minhash

    def check(self, values: list[str]) -> str | None:
        """The duplicate reason for these cleaned text values, or None (and remember them)."""
        digest = blake2b(json.dumps(values).encode("utf-8"), digest_size=16).digest()
        if self.exact and digest in self.seen:
            return "exact_duplicate"
        minhash = self._minhash("\n".join(values)) if self.lsh is not None else None
        if minhash is not None:
            for key in self.lsh.query(minhash):
                if (self.signatures[key] == minhash.hashvalues).mean() >= self.threshold:
                    return "near_duplicate"
            self.lsh.insert(len(self.signatures), minhash)
            self.signatures.append(minhash.hashvalues.copy())
        if self.exact:
            self.seen.add(digest)
        return None


# --- Rows ----------------------------------------------------------------------------------


def _field_problem(row: Mapping[str, Any], text_fields: list[str], required: list[str]) -> str:
    """First missing field, then first wrongly typed one; "" when the row's fields are fine.

    Text fields must hold a str; None in an optional text field counts as absent (the
    `datasets` library fills absent columns with None). Other required fields: not None.
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


def _clean_text(text: str, options: CleaningOptions, touched: set[str], pii: Counter[str]) -> str:
    """One text value through the enabled passes, noting which ones changed it."""
    steps: list[tuple[bool, str, Callable[[str], str]]] = [
        (options.normalize_unicode, "unicode_normalized", _unicode),
        (options.normalize_unicode, "whitespace_normalized", _whitespace),
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
    dedup = _Deduper(options)
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
