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

Per row (:func:`row_text_scores`, written to ``predictions.jsonl``): ROUGE F-measures,
whose mean *is* the corpus ROUGE, and sentence-level chrF and BLEU (sacrebleu's
``sentence_chrf``/``sentence_bleu`` with the corpus tokenizer). Corpus BLEU and chrF
are **not** the mean of the sentence scores: they pool n-gram counts over all rows
first. :class:`PooledStats` keeps those per-row counts, so a corpus score of any subset
or bootstrap resample is a sum and one sacrebleu call (as sacrebleu's own paired
bootstrap does), equal to ``corpus_score`` on those rows.

Everything is deterministic and needs no model.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import sacrebleu
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenizers
from sacrebleu.metrics import BLEU, CHRF

from ft_plugin.utils.text import CJK_CLASS, has_cjk

__all__ = ["CJKTokenizer", "PooledStats", "TextScores", "contains_cjk", "generation_metrics",
           "row_text_scores"]  # fmt: skip

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
    rows: dict[str, list[float]] = field(default_factory=dict, repr=False)  # row_text_scores
    pooled: dict[str, PooledStats] = field(default_factory=dict, repr=False)  # bleu, chrf

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

    ``predictions[i]`` is scored against ``references[i]`` (one reference each). The
    per-row scores are in ``.rows`` and the pooled BLEU/chrF counts in ``.pooled``.

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
    tokenization = _tokenization(references)
    bleu, chrf = BLEU(tokenize=tokenization), CHRF()
    pooled = {
        "bleu": PooledStats.of(bleu, predictions, references),
        "chrf": PooledStats.of(chrf, predictions, references),
    }
    rows = row_text_scores(predictions, references)
    rouge = {name: float(np.mean(rows[name])) for name in ROUGE_TYPES}
    return TextScores(
        bleu=pooled["bleu"].score(),
        chrf=pooled["chrf"].score(),
        **rouge,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        tokenization=tokenization,
        rouge_stemmer=_is_english(references),
        rows=rows,
        pooled=pooled,
    )


def _tokenization(references: list[str]) -> str:
    return "zh" if any(contains_cjk(r) for r in references) else "13a"


def row_text_scores(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    """Per-row ROUGE F (0-100; their mean is the corpus ROUGE) and sentence chrF/BLEU.

    Sentence BLEU uses sacrebleu's ``sentence_bleu`` (effective n-gram order) with the
    corpus tokenizer; corpus BLEU is not the mean of these.

    Example:
        >>> r = row_text_scores(["the cat sat", "a dog"], ["the cat sat", "the cat"])
        >>> r["rouge1"], round(r["bleu"][0], 6)
        ([100.0, 0.0], 100.0)
    """
    tokenization = _tokenization(references)
    stem = _is_english(references)
    scorer = rouge_scorer.RougeScorer(
        list(ROUGE_TYPES), use_stemmer=stem, tokenizer=CJKTokenizer(use_stemmer=stem)
    )
    rows: dict[str, list[float]] = {name: [] for name in (*ROUGE_TYPES, "chrf", "bleu")}
    for pred, ref in zip(predictions, references, strict=True):
        for name, score in scorer.score(ref, pred).items():
            rows[name].append(100.0 * score.fmeasure)
        rows["chrf"].append(sacrebleu.sentence_chrf(pred, [ref]).score)
        rows["bleu"].append(sacrebleu.sentence_bleu(pred, [ref], tokenize=tokenization).score)
    return rows


@dataclass
class PooledStats:
    """Per-row sacrebleu match counts: the corpus score of any rows is one sum away.

    Example:
        >>> hyps, refs = ["the cat sat on the mat", "a dog"], ["the cat sat on a mat", "the dog"]
        >>> PooledStats.of(BLEU(), hyps, refs).score() == BLEU().corpus_score(hyps, [refs]).score
        True
    """

    metric: BLEU | CHRF
    counts: np.ndarray  # (rows, statistics)

    @classmethod
    def of(cls, metric: BLEU | CHRF, predictions: list[str], references: list[str]) -> PooledStats:
        # sacrebleu's paired bootstrap (sacrebleu.significance) uses these same two calls.
        counts = metric._extract_corpus_statistics(predictions, [references])
        return cls(metric, np.asarray(counts, dtype=np.int64))

    def score(self, summed: np.ndarray | None = None) -> float:
        """The corpus score of the summed counts (default: all rows)."""
        total = self.counts.sum(0) if summed is None else summed
        return float(self.metric._compute_score_from_stats(total).score)
