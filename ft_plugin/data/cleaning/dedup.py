"""Exact (blake2b) and near (MinHash LSH, datasketch) duplicate detection for cleaned rows.

Near duplicates: MinHash over the cleaned text fields; shingles are lower-cased word
3-grams for non-CJK text plus CJK characters (:mod:`ft_plugin.utils.text`): single characters
when the row holds fewer than 100 CJK characters (so that 1-2 changed characters in a
30-character Chinese sentence keep Jaccard above 0.85), character bigrams from 100 on
(single characters would make long unrelated texts look alike). LSH finds candidates, and
a row is dropped when its estimated Jaccard with a kept row reaches the threshold. Exact
duplicates: same blake2b hash of the cleaned text fields (other fields, such as labels,
are not compared).

>>> dedup = Deduper(exact=True, threshold=None)
>>> dedup.check(["a b c"]), dedup.check(["a b c"])
(None, 'exact_duplicate')
"""

from __future__ import annotations

import json
import re
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from ft_plugin.utils.text import CJK_RUN_RE

if TYPE_CHECKING:
    from datasketch import MinHash

__all__ = ["CJK_BIGRAMS_FROM", "Deduper", "lsh_params", "shingles"]

CJK_BIGRAMS_FROM = 100  # CJK characters in a row from which CJK shingles are bigrams
_WORD = re.compile(r"[^\W_]+")


def shingles(text: str) -> set[str]:
    """Lower-cased word 3-grams of the non-CJK text, plus CJK characters (bigrams if long).

    >>> sorted(shingles("Blood pressure high 高血压"))
    ['c:压', 'c:血', 'c:高', 'w:blood pressure high']
    """
    runs = CJK_RUN_RE.findall(text)
    n = 1 if sum(map(len, runs)) < CJK_BIGRAMS_FROM else 2
    out = {"c:" + run[i : i + n] for run in runs for i in range(max(len(run) - n + 1, 1))}
    words = _WORD.findall(CJK_RUN_RE.sub(" ", text).lower())
    if words:
        out.update("w:" + " ".join(words[i : i + 3]) for i in range(max(len(words) - 2, 1)))
    return out


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows finding >= 95% of the pairs 0.05 below the threshold, fewest candidates.

    >>> lsh_params(0.85, 128)
    (18, 7)
    """
    target = max(threshold - 0.05, 0.01)
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - target**rows) ** bands >= 0.95:
            return bands, rows
    return num_perm, 1


class Deduper:
    """Exact (blake2b of the cleaned text fields) and near (MinHash LSH) duplicate indexes.

    ``threshold`` is the Jaccard similarity from which a row is a near duplicate (None:
    no near-duplicate index, and datasketch is not needed).

    >>> dedup = Deduper(exact=False, threshold=0.85)
    >>> dedup.check(["the rent is due on the first day"]), dedup.check(["The rent is due on the first day!"])
    (None, 'near_duplicate')
    """

    def __init__(self, *, exact: bool, threshold: float | None, num_perm: int = 128) -> None:
        self.exact = exact
        self.seen: set[bytes] = set()
        self.threshold = threshold
        self.num_perm = num_perm
        self.signatures: list[Any] = []  # LSH key -> MinHash hash values of a kept row
        self.lsh = self.empty = None
        if threshold is not None:
            try:
                from datasketch import MinHash, MinHashLSH
            except ImportError as error:
                raise ImportError(
                    "near-duplicate detection needs datasketch: pip install 'ft-plugin[data]'"
                ) from error
            params = lsh_params(threshold, num_perm)
            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=params)
            self.empty = MinHash(num_perm=num_perm, seed=1)  # copies share its permutations

    def _minhash(self, text: str) -> MinHash | None:
        found = shingles(text)
        if not found or self.empty is None:
            return None
        minhash = self.empty.copy()
        minhash.update_batch([s.encode("utf-8", "surrogatepass") for s in found])
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
