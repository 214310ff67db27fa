"""Text metrics checked against independent computations (sacrebleu direct, hand ROUGE)."""

from __future__ import annotations

from collections import Counter

import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from ft_plugin.evaluate.text_metrics import CJKTokenizer, contains_cjk, generation_metrics

EN_PRED = ["the cat sat on the red mat", "a quick brown fox jumps over the dog", "hello world"]
EN_REF = [
    "a cat was on the mat",
    "the quick brown fox jumped over the lazy dog",
    "hello there world",
]
ZH_PRED = "今天天气很好"
ZH_REF = "明天天气也很好啊"


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_ref
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def test_bleu_and_chrf_equal_sacrebleu_called_directly():
    scores = generation_metrics(EN_PRED, EN_REF)
    assert scores.tokenization == "13a"
    assert scores.bleu == pytest.approx(
        sacrebleu.corpus_bleu(EN_PRED, [EN_REF], tokenize="13a").score
    )
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(EN_PRED, [EN_REF]).score)
    assert 0 < scores.bleu < 100


def test_chinese_bleu_uses_zh_tokenizer_like_sacrebleu():
    preds, refs = [ZH_PRED, "我们明天去北京"], [ZH_REF, "我们后天去上海"]
    scores = generation_metrics(preds, refs)
    assert scores.tokenization == "zh"
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(preds, [refs], tokenize="zh").score)
    assert scores.bleu != pytest.approx(sacrebleu.corpus_bleu(preds, [refs], tokenize="13a").score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score)


def test_identical_chinese_pair_scores_100_everywhere():
    scores = generation_metrics(["今天天气很好，我们去公园。"], ["今天天气很好，我们去公园。"])
    for name, value in scores.to_dict().items():
        assert value == pytest.approx(100.0), name


def test_chinese_rouge1_is_character_unigram_f1():
    pred, ref = Counter(ZH_PRED), Counter(ZH_REF)
    overlap = sum((pred & ref).values())  # 天 天 气 很 好 -> 5
    assert overlap == 5
    expected = 100 * _f1(overlap, sum(pred.values()), sum(ref.values()))
    scores = generation_metrics([ZH_PRED], [ZH_REF])
    assert scores.rouge1 == pytest.approx(expected)
    assert scores.rouge_stemmer is False


def test_default_rouge_tokenizer_loses_chinese_but_ours_does_not():
    default = rouge_scorer.RougeScorer(["rouge1", "rougeL"]).score(ZH_REF, ZH_PRED)
    assert default["rouge1"].fmeasure == pytest.approx(0.0)
    assert default["rougeL"].fmeasure == pytest.approx(0.0)
    scores = generation_metrics([ZH_PRED], [ZH_REF])
    assert scores.rouge1 > 50 and scores.rougeL > 50


def test_english_rouge_l_is_hand_computed_lcs_f_measure():
    # Words of at most 3 letters, which the Porter stemmer leaves alone.
    pred, ref = "the cat sat on the red mat", "a cat was on the mat"
    lcs = _lcs(pred.split(), ref.split())  # cat on the mat
    assert lcs == 4
    scores = generation_metrics([pred], [ref])
    assert scores.rougeL == pytest.approx(100 * _f1(lcs, 7, 6))
    assert scores.rouge1 == pytest.approx(100 * _f1(4, 7, 6))  # cat on the mat
    assert scores.rouge2 == pytest.approx(100 * _f1(1, 6, 5))  # "on the"


def test_english_rouge_is_stemmed_and_averaged_over_pairs():
    scores = generation_metrics(["cats running", "alpha beta"], ["cat runs", "gamma delta"])
    assert scores.rouge_stemmer is True
    assert scores.rouge1 == pytest.approx(50.0)  # 100 for the stemmed pair, 0 for the other


def test_signatures_recorded():
    en = generation_metrics(EN_PRED, EN_REF)
    zh = generation_metrics([ZH_PRED], [ZH_REF])
    for scores, preds, refs in [(en, EN_PRED, EN_REF), (zh, [ZH_PRED], [ZH_REF])]:
        bleu, chrf = BLEU(tokenize=scores.tokenization), CHRF()
        bleu.corpus_score(preds, [refs])
        chrf.corpus_score(preds, [refs])
        assert scores.bleu_signature == str(bleu.get_signature())
        assert scores.chrf_signature == str(chrf.get_signature())
    assert "tok:13a" in en.bleu_signature and "tok:zh" in zh.bleu_signature
    assert "nc:6" in en.chrf_signature and "version:" in en.chrf_signature


def test_to_dict_is_flat_map_of_five_scores():
    result = generation_metrics(EN_PRED, EN_REF).to_dict()
    assert list(result) == ["bleu", "chrf", "rouge1", "rouge2", "rougeL"]
    assert all(isinstance(v, float) for v in result.values())


def test_tokenizer_splits_cjk_characters_and_lowercases_words():
    assert CJKTokenizer().tokenize("ＧＤＰ增长了 Three%！") == ["gdp", "增", "长", "了", "three"]
    assert CJKTokenizer(use_stemmer=True).tokenize("Running 跑步") == ["run", "跑", "步"]
    assert contains_cjk("東京") and contains_cjk("서울") and not contains_cjk("café")


def test_empty_prediction_scores_zero_rouge():
    assert generation_metrics([""], ["some reference"]).rouge1 == 0.0


@pytest.mark.parametrize(
    ("preds", "refs", "message"),
    [
        (["a", "b"], ["a"], "2 predictions, 1 references"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_raise(preds, refs, message):
    with pytest.raises(ValueError, match=message):
        generation_metrics(preds, refs)
