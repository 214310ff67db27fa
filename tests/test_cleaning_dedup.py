"""Duplicates (ft_plugin.data.cleaning.dedup): exact and near, English and Chinese."""

from __future__ import annotations

import doctest
import itertools

from cleaning_helpers import ALPACA, ALPACA_REQUIRED, run, texts

from ft_plugin.data.cleaning import dedup

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
    first, second = dedup.shingles(a), dedup.shingles(b)
    return len(first & second) / len(first | second)


def test_chinese_shingles_separate_near_duplicates_from_unrelated_text() -> None:
    near = [jaccard(ZH[0], ZH_NEAR[0]), jaccard(ZH[0], ZH_NEAR[1])]
    near += [jaccard(ZH[1], ZH_NEAR[2]), jaccard(ZH[0], ZH_NEAR[3])]
    unrelated = [jaccard(a, b) for a, b in itertools.combinations(ZH, 2)]
    assert [round(j, 3) for j in near] == [0.947, 0.923, 0.879, 0.946]
    assert min(near) > 0.85 > 0.2 > max(unrelated)


def test_long_chinese_text_uses_character_bigrams() -> None:
    long_a, long_b = ZH[0] + ZH[2] + ZH[4], ZH[1] + ZH[3] + ZH[5]  # > 100 CJK characters each
    assert {len(s) for s in dedup.shingles(long_a)} == {4}  # "c:" + two characters
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


def test_docstring_examples() -> None:
    assert doctest.testmod(dedup).failed == 0
