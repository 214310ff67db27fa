"""PII scrubbing (ft_plugin.data.cleaning.pii): each format, and ordinary numbers kept."""

from __future__ import annotations

import doctest
from collections import Counter

import pytest
from cleaning_helpers import run, texts

from ft_plugin.data.cleaning import pii, scrub_pii

PII_CASES = [
    ("Write to jane.doe+x@example.co.uk today.", "Write to [EMAIL] today.", "EMAIL"),
    ("请发邮件至zhang.wei@example.cn。", "请发邮件至[EMAIL]。", "EMAIL"),
    ("Call +44 20 7946 0958 now.", "Call [PHONE] now.", "PHONE"),
    ("Call (555) 123-4567 now.", "Call [PHONE] now.", "PHONE"),
    ("Call 555-123-4567 now.", "Call [PHONE] now.", "PHONE"),
    ("Call 1-800-555-0199 now.", "Call [PHONE] now.", "PHONE"),
    ("手机13812345678请联系", "手机[PHONE]请联系", "PHONE"),
    ("电话+86 138 1234 5678。", "电话[PHONE]。", "PHONE"),
    ("Card 4111 1111 1111 1111 on file.", "Card [CARD] on file.", "CARD"),
    ("Card 4111-1111-1111-1111 on file.", "Card [CARD] on file.", "CARD"),
    ("Card 5500005555555559 on file.", "Card [CARD] on file.", "CARD"),
    ("Amex 3782 822463 10005 on file.", "Amex [CARD] on file.", "CARD"),
    ("SSN 123-45-6789 on file.", "SSN [NATIONAL_ID] on file.", "NATIONAL_ID"),
    ("SSN: 123456789 on file.", "SSN: [NATIONAL_ID] on file.", "NATIONAL_ID"),
    ("身份证号11010519491231002X，", "身份证号[NATIONAL_ID]，", "NATIONAL_ID"),
    ("IBAN GB82 WEST 1234 5698 7654 32.", "IBAN [ACCOUNT].", "ACCOUNT"),
    ("IBAN DE89370400440532013000 paid", "IBAN [ACCOUNT] paid", "ACCOUNT"),
    ("Account No. 12345678 is closed.", "Account No. [ACCOUNT] is closed.", "ACCOUNT"),
    ("acct #987654321 frozen", "acct #[ACCOUNT] frozen", "ACCOUNT"),
    ("账号：6222021234567890。", "账号：[ACCOUNT]。", "ACCOUNT"),
    ("DOB: 1985-03-12.", "DOB: [DOB].", "DOB"),
    ("Date of birth 12/03/1985, male.", "Date of birth [DOB], male.", "DOB"),
    ("She was born on 12 March 1985.", "She was born on [DOB].", "DOB"),
    ("Born on March 12, 1985 in Leeds.", "Born on [DOB] in Leeds.", "DOB"),
    ("出生日期：1985年3月12日，", "出生日期：[DOB]，", "DOB"),
    ("生日是1990年5月1日。", "生日是[DOB]。", "DOB"),
]


@pytest.mark.parametrize(("text", "expected", "label"), PII_CASES)
def test_scrub_pii_each_format(text: str, expected: str, label: str) -> None:
    assert scrub_pii(text) == (expected, Counter({label: 1}))


NOT_PII = [
    "Order 4111 1111 1111 1112 shipped.",  # 16 digits, Luhn-invalid
    "Order 1234567812345678 shipped.",  # Luhn-invalid
    "Bad IBAN GB82 WEST 1234 5698 7654 33.",  # checksum off by one
    "ID 110105194912310021 has a wrong check digit.",
    "SSN 000-12-3456 cannot exist.",
    "Signed on 12 March 2024; born in 1985.",  # a date, but not introduced as a birth date
    "The account for 35% of revenue is 2024.",
]


FALSE_POSITIVE_TEXTS = [
    "In fiscal 2024, revenue rose 12.5% to $1,250.00 million (2023: $980.75 million); EPS was "
    "3.42, the 10-K lists 1,234,567 shares and a 4.75% coupon maturing 2031-06-30.",
    "Take 500 mg amoxicillin every 8 hours for 7 days; BP 120/80 mmHg, HbA1c 6.5%, glucose "
    "5.6 mmol/L, ICD-10 E11.9, follow-up on 03/15/2024 at 10:30, ext. 4521.",
    "Under Section 12.3 and clause 4.2(b) of the 2019 Agreement, case no. 2:23-cv-01234, the "
    "tenant owes $3,500.00 by 2024-03-15; see 42 U.S.C. § 1983, ISBN 978-0-306-40615-7.",
    "Patient ID 12-3456-789, lot 2024-001-0042, NDC 0002-3227-30, ISIN US0378331005, policy "
    "2023-456-7890, PMID 31452104, DOI 10.1056/NEJMoa2034577, ratio 3:1, pages 12-15, "
    "1.5-2.0 mg/kg, 1,234,567,890 shares, 13.8% CAGR, IP 192.168.1.254, zip 10001-1234.",
    "2024年第三季度营收同比增长12.5%，每次口服500毫克，每日3次，依据第12.3条，"
    "于2024年3月15日签署，金额为1,250,000.00元。",
]


@pytest.mark.parametrize("text", NOT_PII + FALSE_POSITIVE_TEXTS)
def test_scrub_pii_leaves_ordinary_numbers(text: str) -> None:
    assert scrub_pii(text) == (text, Counter())


def test_pii_in_clean_rows_counts_kept_rows() -> None:
    rows = [
        {"text": "Contact jane@example.com or +44 20 7946 0958."},
        {"text": "Contact bob@example.org or +44 20 7946 0958."},  # same once redacted
        {"text": "患者身份证号11010519491231002X，手机13812345678，出生日期：1985年3月12日。"},
        {"text": "Pay with 4111 1111 1111 1111, not 4111 1111 1111 1112."},
        *({"text": text} for text in FALSE_POSITIVE_TEXTS),
    ]
    out, report = run(rows, scrub_pii=True)
    assert texts(out)[:3] == [
        "Contact [EMAIL] or [PHONE].",
        "患者身份证号[NATIONAL_ID]，手机[PHONE]，出生日期：[DOB]。",
        "Pay with [CARD], not 4111 1111 1111 1112.",
    ]
    assert texts(out)[3:7] == FALSE_POSITIVE_TEXTS[:4]
    assert report.dropped == {"exact_duplicate": 1}
    assert report.pii == {"EMAIL": 1, "PHONE": 2, "NATIONAL_ID": 1, "DOB": 1, "CARD": 1}
    assert report.modified == {"pii_redacted": 3}


def test_pii_is_kept_unless_asked() -> None:
    rows = [{"text": "Contact jane@example.com or +44 20 7946 0958."}]
    out, report = run(rows)
    assert out == rows and report.pii == {}


def test_docstring_examples() -> None:
    assert doctest.testmod(pii).failed == 0


@pytest.mark.parametrize(
    "text",
    [
        "Ring 020 7946 0958 today.",  # GB landline, no "+"
        "Fax 0161 496 0000.",
        "Office 010-6552 9988 北京",  # Beijing landline
        "Call +33 1 42 68 53 00 now.",  # any country with "+"
        "Call +1 (555) 123-4567.",
        "call 212 555 0123 now",  # US, space-separated
    ],
)
def test_phonenumbers_finds_landlines_and_other_layouts(text: str) -> None:
    scrubbed, counts = scrub_pii(text)
    assert counts == Counter({"PHONE": 1}) and "[PHONE]" in scrubbed
