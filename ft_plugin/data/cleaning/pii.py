"""PII scrubbing: typed placeholders for e-mails, IDs, accounts, birth dates, cards, phones.

Patterns (`scrub_pii`), applied in this order, each replaced by a typed placeholder:

- ``[EMAIL]``: ASCII addresses ``local@domain.tld``.
- ``[ACCOUNT]``: IBANs in upper case, grouped by 4 or not, valid by ``stdnum.iban``
  (mod-97 and the country's BBAN layout); 8-17 digits right after ``account`` / ``acct``
  / ``a/c`` (+ ``no.``, ``number``, ``#``, ``:``) or 账号 / 帐号 / 账户 (the keyword is
  kept, the digits are replaced).
- ``[NATIONAL_ID]``: Chinese resident IDs (18 characters, valid by ``stdnum.cn.ric``:
  birth date, birth place, ISO 7064 check digit); US SSNs ``123-45-6789``, or 9 digits
  after ``SSN``, valid by ``stdnum.us.ssn`` (areas 000/666/9xx and known fakes skipped).
- ``[DOB]``: a date after DOB / date of birth / birth date / born on / 出生日期 / 出生于 / 生日
  (ISO, ``12/03/1985``, ``12.03.85``, ``19850312``, ``12 March 1985``, ``March 12, 1985``,
  ``1985年3月12日``); the keyword is kept.
- ``[CARD]``: 13-19 digits, plain or grouped by 4 (Amex 4-6-5), first digit 2-6, valid by
  ``stdnum.luhn``.
- ``[PHONE]``: what ``phonenumbers.PhoneNumberMatcher`` finds: numbers valid in the US,
  GB or CN (``+44 20 7946 0958``, ``1-800-555-0199``, ``13812345678``), any possible
  number written with ``+`` and a country code (``+86 138 1234 5678``), and US-laid-out
  numbers ``(555) 123-4567`` / ``555-123-4567`` whose area code is unassigned.

Known limits: e-mail, account, ID and date patterns are Latin-script and ASCII (no IDN
e-mails, lower-case IBANs, other countries' IDs, spelled-out numbers); a Luhn-valid 13-19
digit order number still reads as a card (about 1 in 10 random ones), and a number that
is a valid US, GB or Chinese phone number reads as one; an account number is only found
right after its keyword and a date of birth only after one of the listed keywords.
Years, amounts, percentages, dosages, clause numbers and other short numbers never match.

>>> scrub_pii("SSN 123-45-6789, card 4111 1111 1111 1111")
('SSN [NATIONAL_ID], card [CARD]', Counter({'NATIONAL_ID': 1, 'CARD': 1}))
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import phonenumbers
from stdnum import iban, luhn
from stdnum.cn import ric
from stdnum.us import ssn

__all__ = ["scrub_pii"]

Handler = Callable[[re.Match[str]], tuple[str, str] | None]  # None, or (kept before, after)

_A = re.ASCII
_I = re.ASCII | re.IGNORECASE
# Regexes find the candidates (no maintained library finds e-mails, IDs or dates of birth
# in running text); stdnum and phonenumbers decide which candidates are real.
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", _A)
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _A)
_CN_ID = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])", _A)
_SSN = re.compile(r"(?<![0-9-])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9]|-[0-9])", _A)
_SSN_KEYWORD = re.compile(
    r"(?P<key>\b(?:SSN|social security (?:number|no\.?))\s*[:#]?\s*)"
    r"(?P<value>[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{4})(?![0-9])",
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


def _whole(match: re.Match[str]) -> tuple[str, str]:
    return "", ""


def _after_key(match: re.Match[str]) -> tuple[str, str]:
    return match["key"], ""


def _iban(match: re.Match[str]) -> tuple[str, str] | None:
    """Valid IBAN, also when the match took in a trailing 4-character word."""
    text = head = match.group()
    for _ in range(3):
        if iban.is_valid(head.replace(" ", "")):
            return "", text[len(head) :]
        if " " not in head:
            break
        head = head.rsplit(" ", 1)[0]
    return None


def _cn_id(match: re.Match[str]) -> tuple[str, str] | None:
    return ("", "") if ric.is_valid(match.group()) else None


def _ssn(match: re.Match[str]) -> tuple[str, str] | None:
    return ("", "") if ssn.is_valid(match.group()) else None


def _ssn_after_key(match: re.Match[str]) -> tuple[str, str] | None:
    return (match["key"], "") if ssn.is_valid(re.sub(r"[ -]", "", match["value"])) else None


def _card(match: re.Match[str]) -> tuple[str, str] | None:
    groups = [len(g) for g in re.split(r"[ -]", match.group())]
    digits = re.sub(r"[ -]", "", match.group())
    grouped = len(groups) == 1 or groups in ([4, 6, 5], [4, 6, 4])
    grouped = grouped or (set(groups[:-1]) == {4} and 1 <= groups[-1] <= 4)
    return ("", "") if grouped and digits[0] in "23456" and luhn.is_valid(digits) else None


_PII_RULES: tuple[tuple[str, re.Pattern[str], Handler], ...] = (
    ("EMAIL", _EMAIL, _whole),
    ("ACCOUNT", _IBAN, _iban),
    ("NATIONAL_ID", _CN_ID, _cn_id),
    ("NATIONAL_ID", _SSN, _ssn),
    ("NATIONAL_ID", _SSN_KEYWORD, _ssn_after_key),
    ("DOB", _DOB, _after_key),
    ("ACCOUNT", _ACCOUNT_KEYWORD, _after_key),
    ("CARD", _CARD, _card),
)

PHONE_REGIONS = ("US", "GB", "CN")
# NANP layout, to keep numbers with unassigned area codes (555) that phonenumbers calls invalid
_DIGIT_RUN = re.compile(r"[0-9](?:[ ./()-]{0,3}[0-9]){6}", _A)
_NANP_LAYOUT = re.compile(r"(?:\+?1[ .-])?(?:\([0-9]{3}\) ?|[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}", _A)


def _phone_spans(text: str) -> list[tuple[int, int]]:
    """Where phone numbers are in ``text``, overlapping finds merged, left to right.

    >>> _phone_spans("call +44 20 7946 0958 or 555-123-4567")
    [(5, 21), (25, 37)]
    """
    matcher, leniency = phonenumbers.PhoneNumberMatcher, phonenumbers.Leniency
    spans = [(m.start, m.end) for r in PHONE_REGIONS for m in matcher(text, r, leniency.VALID)]
    if "+" in text:  # no region: only numbers with a country code
        spans += [(m.start, m.end) for m in matcher(text, None, leniency.POSSIBLE)]
    if _NANP_LAYOUT.search(text):
        us = matcher(text, "US", leniency.POSSIBLE)
        spans += [(m.start, m.end) for m in us if _NANP_LAYOUT.fullmatch(m.raw_string)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _scrub_phones(text: str, counts: Counter[str]) -> str:
    if not _DIGIT_RUN.search(text):  # no phone number has fewer than 7 digits
        return text
    for start, end in reversed(_phone_spans(text)):
        text = f"{text[:start]}[PHONE]{text[end:]}"
        counts["PHONE"] += 1
    return text


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
    return _scrub_phones(text, counts), counts
