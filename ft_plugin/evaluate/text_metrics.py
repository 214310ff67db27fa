"""Reference-based metrics for generated text: BLEU, chrF and ROUGE.

Scales (the same in every ``ft_plugin.evaluate`` module):

* ``bleu`` and ``chrf`` are corpus-level scores on sacrebleu's 0-100 scale;
* ``rouge1``, ``rouge2`` and ``rougeL`` are F-measures on 0-100 (rouge-score's 0-1
  value times 100), averaged over the prediction/reference pairs;
* classification scores (``accuracy``, ``macro_f1``, precision, recall) are on 0-1.

Chinese (and other CJK) text needs care with both libraries:

* BLEU switches to sacrebleu's ``tokenize="zh"`` (one token per Chinese character) when
  any reference contains a CJK character; otherwise it uses the standard ``"13a"``.
  The tokenizer is recorded in :attr:`TextScores.tokenization` and in the signature.
* rouge-score's default tokenizer keeps only ``[a-z0-9]``, so Chinese text has no tokens
  and scores 0. ROUGE here uses :class:`CJKTokenizer` instead: every CJK character is a
  token of its own, other text is split into lower-cased Unicode letter/digit words.
  Porter stemming (rouge-score's own stemmer) is applied only to English: references
  without CJK characters whose letters are at least 90% ASCII.

Everything is deterministic and needs no model.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenizers
from sacrebleu.metrics import BLEU, CHRF

from ft_plugin.text import CJK_CLASS, has_cjk

__all__ = ["CJKTokenizer", "TextScores", "contains_cjk", "generation_metrics"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

# One CJK character, or a run of letters/digits that are not CJK (no underscore).
_TOKEN_RE = re.compile(f"[{CJK_CLASS}]|[^\\W_{CJK_CLASS}]+")
_LETTER_RE = re.compile(r"[^\W\d_]")


def contains_cjk(text: str) -> bool:
    """Whether ``text`` holds at least one CJK (Han, kana or Hangul) character.

    Example:
        >>> contains_cjk("GDP增长"), contains_cjk("GDP growth")
        (True, False)
    """
    return has_cjk(text)


class CJKTokenizer(tokenizers.Tokenizer):
    """rouge-score tokenizer that keeps CJK text: one token per CJK character.

    Text is NFKC-normalised (full-width letters become ASCII) and lower-cased; other
    words are runs of Unicode letters and digits. With ``use_stemmer`` ASCII words longer
    than 3 characters are Porter-stemmed exactly as rouge-score's default tokenizer does.

    Example:
        >>> CJKTokenizer(use_stemmer=True).tokenize("GDP增长 Running！")
        ['gdp', '增', '长', 'run']
    """

    def __init__(self, use_stemmer: bool = False) -> None:
        self._stemmer = porter.PorterStemmer() if use_stemmer else None

    def tokenize(self, text: str) -> list[str]:
        tokens = _TOKEN_RE.findall(unicodedata.normalize("NFKC", text).lower())
        if self._stemmer is None:
            return tokens
        stem = self._stemmer.stem
        return [stem(t) if len(t) > 3 and t.isascii() else t for t in tokens]


@dataclass
class TextScores:
    """Corpus scores of generated text against references (all on 0-100).

    Example:
        >>> s = generation_metrics(["the cat sat on the mat"], ["the cat sat on the mat"])
        >>> s.to_dict()["rougeL"], s.tokenization
        (100.0, '13a')
    """

    bleu: float
    chrf: float
    rouge1: float
    rouge2: float
    rougeL: float
    bleu_signature: str
    chrf_signature: str
    tokenization: str
    rouge_stemmer: bool = False

    def to_dict(self) -> dict[str, float]:
        """The five scores as a flat ``{name: value}`` map."""
        return {
            "bleu": self.bleu,
            "chrf": self.chrf,
            "rouge1": self.rouge1,
            "rouge2": self.rouge2,
            "rougeL": self.rougeL,
        }


def _is_english(references: list[str]) -> bool:
    """No CJK, and at least 90% of the letters ASCII (stemming is English-only)."""
    text = "".join(references)
    if contains_cjk(text):
        return False
    letters = _LETTER_RE.findall(text)
    return bool(letters) and sum(c.isascii() for c in letters) >= 0.9 * len(letters)


def generation_metrics(predictions: list[str], references: list[str]) -> TextScores:
    """BLEU, chrF (corpus level, sacrebleu) and mean ROUGE F-measures, all on 0-100.

    ``predictions[i]`` is scored against ``references[i]`` (one reference each).

    Example:
        >>> s = generation_metrics(["今天天气很好"], ["今天天气很好"])
        >>> round(s.bleu), round(s.chrf), round(s.rouge1), s.tokenization
        (100, 100, 100, 'zh')

    Raises:
        ValueError: the lists are empty or of different lengths.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references differ in length: "
            f"{len(predictions)} predictions, {len(references)} references"
        )
    if not predictions:
        raise ValueError("no predictions to score: predictions and references are empty")
    tokenization = "zh" if any(contains_cjk(r) for r in references) else "13a"
    bleu, chrf = BLEU(tokenize=tokenization), CHRF()
    bleu_score = bleu.corpus_score(predictions, [references]).score
    chrf_score = chrf.corpus_score(predictions, [references]).score
    stem = _is_english(references)
    scorer = rouge_scorer.RougeScorer(
        list(ROUGE_TYPES), use_stemmer=stem, tokenizer=CJKTokenizer(use_stemmer=stem)
    )
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        for name, score in scorer.score(ref, pred).items():
            totals[name] += score.fmeasure
    rouge = {name: 100.0 * total / len(predictions) for name, total in totals.items()}
    return TextScores(
        bleu=bleu_score,
        chrf=chrf_score,
        **rouge,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        tokenization=tokenization,
        rouge_stemmer=stem,
    )
