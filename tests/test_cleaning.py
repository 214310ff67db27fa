"""Row cleaning (ft_plugin.data.cleaning): plant each kind of dirt, check output and counts."""

from __future__ import annotations

import copy
import doctest
import inspect
import itertools
from collections import Counter
from typing import Any

import pytest

from ft_plugin.data import cleaning
from ft_plugin.data.cleaning import (
    CleaningOptions,
    CleaningReport,
    clean_rows,
    normalize_text,
    scrub_pii,
    strip_markup,
)

ALPACA = ["instruction", "input", "output"]
ALPACA_REQUIRED = ["instruction", "output"]

# ~30-40 character Chinese sentences on unrelated (and some related) domain topics
ZH = [
    "患者男性五十二岁，因反复胸闷气短三个月入院，既往有高血压病史十年，规律服药控制良好。",
    "本合同自双方签字盖章之日起生效，有效期为三年，期满前一个月双方可协商续签事宜。",
    "该公司第三季度营业收入同比增长百分之十二，净利润率有所下降，主要受原材料价格上涨影响。",
    "糖尿病患者应当控制饮食，适量运动，定期监测血糖，并在医生指导下规范使用降糖药物。",
    "高血压患者需要长期服药，不可随意停药，同时应减少食盐摄入，戒烟限酒，保持良好心态。",
    "当事人对一审判决不服的，有权在判决书送达之日起十五日内向上一级人民法院提起上诉。",
]
ZH_NEAR = [
    # one character changed (良好 -> 较好)
    "患者男性五十二岁，因反复胸闷气短三个月入院，既往有高血压病史十年，规律服药控制较好。",
    # two characters changed (男 -> 女, 十 -> 八)
    "患者女性五十二岁，因反复胸闷气短三个月入院，既往有高血压病史八年，规律服药控制良好。",
    # two characters changed (三 -> 五, 一 -> 两)
    "本合同自双方签字盖章之日起生效，有效期为五年，期满前两个月双方可协商续签事宜。",
    # two characters deleted (气短)
    "患者男性五十二岁，因反复胸闷三个月入院，既往有高血压病史十年，规律服药控制良好。",
]

EN = (
    "The tenant shall pay the monthly rent on or before the first business day of each "
    "calendar month to the landlord's designated account."
)
EN_NEAR = [
    # case, punctuation and one appended word
    "the tenant shall pay the Monthly Rent on or before the first business day of each "
    "calendar month, to the landlord's designated account, without deduction.",
    # shouting, different final punctuation
    EN.upper().replace(".", "!"),
]
EN_DISTINCT = [
    # one word changed in the middle: a different clause, Jaccard of word 3-grams 0.76
    EN.replace("first", "fifth"),
    "The landlord shall return the security deposit within thirty days after the lease ends.",
    "Either party may terminate this agreement with sixty days written notice to the other.",
]


def run(
    rows: list[Any],
    text_fields: list[str] | None = None,
    required: list[str] | None = None,
    **options: Any,
) -> tuple[list[dict[str, Any]], CleaningReport]:
    report = CleaningReport()
    out = list(
        clean_rows(
            rows,
            text_fields=text_fields or ["text"],
            required_fields=["text"] if required is None else required,
            options=CleaningOptions(**options),
            report=report,
        )
    )
    assert report.input_rows == len(rows)
    assert report.output_rows == len(out)
    assert report.input_rows == report.output_rows + sum(report.dropped.values())
    return out, report


def texts(rows: list[dict[str, Any]]) -> list[str]:
    return [row["text"] for row in rows]


# --- duplicates ----------------------------------------------------------------------------


def test_exact_duplicates_english_and_chinese_first_kept() -> None:
    rows = [
        {"text": "What is a bond coupon?", "id": 1},
        {"text": "What is a bond coupon?", "id": 2},
        {"text": "  What is a\u00a0bond   coupon?\u200b ", "id": 3},  # same after cleaning
        {"text": ZH[0], "id": 4},
        {"text": ZH[0], "id": 5},
        {"text": "What is a bond yield?", "id": 6},
        {"text": ZH[1], "id": 7},
    ]
    out, report = run(rows)
    assert [row["id"] for row in out] == [1, 4, 6, 7]
    assert report.dropped == {"exact_duplicate": 3}
    # Chinese full-width punctuation is kept, so no row needed normalising
    assert report.modified == {}


def test_exact_duplicate_ignores_non_text_fields() -> None:
    rows = [{"text": "Great product", "label": 1}, {"text": "Great product", "label": 0}]
    out, report = run(rows, required=["text", "label"])
    assert out == [{"text": "Great product", "label": 1}]
    assert report.dropped == {"exact_duplicate": 1}


def test_near_duplicates_english() -> None:
    rows = [{"text": t} for t in [EN, *EN_NEAR, *EN_DISTINCT]]
    out, report = run(rows)
    assert texts(out) == [EN, *EN_DISTINCT]
    assert report.dropped == {"near_duplicate": 2}


def test_near_duplicates_chinese() -> None:
    order = [ZH[0], ZH_NEAR[0], ZH[1], ZH_NEAR[1], ZH[2], ZH[3], ZH_NEAR[2], ZH[4], ZH_NEAR[3]]
    rows = [{"text": t, "n": i} for i, t in enumerate([*order, ZH[5]])]
    out, report = run(rows, normalize_unicode=False)
    assert texts(out) == ZH
    assert report.dropped == {"near_duplicate": 4}


def test_near_duplicates_mixed_language_rows() -> None:
    rows = [
        {"instruction": "Summarise the case.", "input": "", "output": ZH[0]},
        {"instruction": "Summarise the case.", "input": "", "output": ZH_NEAR[0]},
        {"instruction": "Summarise the case.", "input": "", "output": ZH[3]},
    ]
    out, report = run(rows, ALPACA, ALPACA_REQUIRED, normalize_unicode=False)
    assert [row["output"] for row in out] == [ZH[0], ZH[3]]
    assert report.dropped == {"near_duplicate": 1}


def jaccard(a: str, b: str) -> float:
    first, second = cleaning._shingles(a), cleaning._shingles(b)
    return len(first & second) / len(first | second)


def test_chinese_shingles_separate_near_duplicates_from_unrelated_text() -> None:
    near = [jaccard(ZH[0], ZH_NEAR[0]), jaccard(ZH[0], ZH_NEAR[1])]
    near += [jaccard(ZH[1], ZH_NEAR[2]), jaccard(ZH[0], ZH_NEAR[3])]
    unrelated = [jaccard(a, b) for a, b in itertools.combinations(ZH, 2)]
    assert [round(j, 3) for j in near] == [0.947, 0.923, 0.879, 0.946]
    assert min(near) > 0.85 > 0.2 > max(unrelated)


def test_long_chinese_text_uses_character_bigrams() -> None:
    long_a, long_b = ZH[0] + ZH[2] + ZH[4], ZH[1] + ZH[3] + ZH[5]  # > 100 CJK characters each
    assert {len(s) for s in cleaning._shingles(long_a)} == {4}  # "c:" + two characters
    edited = long_a.replace("五十二", "五十三").replace("十年", "八年")
    assert jaccard(long_a, edited) > 0.9
    assert jaccard(long_a, long_b) < 0.05
    rows = [{"text": long_a}, {"text": edited}, {"text": long_b}]
    out, report = run(rows, normalize_unicode=False)
    assert texts(out) == [long_a, long_b]
    assert report.dropped == {"near_duplicate": 1}


def test_dedup_switches() -> None:
    rows = [{"text": EN}, {"text": EN}, {"text": EN_NEAR[0]}]
    out, report = run(rows, dedup_exact=False, near_dup_threshold=None)
    assert len(out) == 3 and report.dropped == {}
    out, report = run(rows, dedup_exact=False)
    assert texts(out) == [EN]
    assert report.dropped == {"near_duplicate": 2}
    out, report = run(rows, near_dup_threshold=None)
    assert texts(out) == [EN, EN_NEAR[0]]
    assert report.dropped == {"exact_duplicate": 1}


# --- fields --------------------------------------------------------------------------------


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


# --- lengths -------------------------------------------------------------------------------


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


# --- unicode and HTML ----------------------------------------------------------------------


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

    monkeypatch.setattr(cleaning._TextExtractor, "feed", broken_feed)
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


def test_passes_can_be_switched_off() -> None:
    rows = [{"text": "  <b>Ｘ</b>\u200b jane@example.com  "}]
    out, report = run(rows, normalize_unicode=False, strip_html=False)
    assert out == rows and out[0] is not rows[0]
    assert report.modified == {} and report.pii == {}


# --- PII -----------------------------------------------------------------------------------

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


# --- streaming, copies, report, options ----------------------------------------------------


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
