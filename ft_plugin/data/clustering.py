"""Topic clustering (TF-IDF + k-means) to spot gaps and imbalance in a corpus.

The analyzer handles English and CJK together: Latin-script segments give lower-cased
word tokens without English stop words, CJK runs give overlapping character bigrams (Chinese
has no spaces to split words on), so a mixed English/Chinese corpus clusters sensibly.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.utils.text import CJK_CLASS

__all__ = ["TopicReport", "analyze", "cluster_topics", "default_k", "plot_topic_sizes"]

_SEGMENTS = re.compile(f"([{CJK_CLASS}]+)")
_WORD = re.compile(r"(?u)\b\w\w+\b")

# Fonts with CJK glyphs, most common first; the first one installed is used for labels.


@dataclass
class TopicReport:
    """Clusters (largest first), one cluster id per input text, and k-means inertia."""

    k: int
    clusters: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[int] = field(default_factory=list)
    inertia: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of the report."""
        return asdict(self)


def analyze(text: str) -> list[str]:
    """Features of one text: Latin words (lower-cased, no stop words) and CJK bigrams.

    Example:
        >>> analyze("The blood pressure 高血压")
        ['blood', 'pressure', '高血', '血压']
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    tokens: list[str] = []
    for index, segment in enumerate(_SEGMENTS.split(text)):
        if index % 2:  # a CJK run (captured by the split)
            if len(segment) == 1:
                tokens.append(segment)
            else:
                tokens += [segment[i : i + 2] for i in range(len(segment) - 1)]
        else:
            tokens += [
                word
                for word in _WORD.findall(segment.lower())
                if word not in ENGLISH_STOP_WORDS and not word.isdigit()
            ]
    return tokens


def default_k(n: int) -> int:
    """The cluster count used when none is given: ``max(2, min(10, round(sqrt(n / 2))))``.

    Example:
        >>> default_k(50), default_k(4), default_k(1000)
        (5, 2, 10)
    """
    return max(2, min(10, round(math.sqrt(n / 2))))


def _example(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _single_cluster(texts: list[str], top_terms: int) -> TopicReport:
    counts: dict[str, int] = {}
    for text in texts:
        for token in analyze(text):
            counts[token] = counts.get(token, 0) + 1
    terms = sorted(counts, key=lambda term: (-counts[term], term))[:top_terms]
    cluster = {
        "id": 0,
        "size": len(texts),
        "top_terms": terms,
        "examples": [_example(text) for text in texts[:2]],
    }
    return TopicReport(k=1, clusters=[cluster], assignments=[0] * len(texts), inertia=0.0)


def cluster_topics(
    texts: list[str], *, k: int | None = None, seed: int = 0, top_terms: int = 8
) -> TopicReport:
    """Cluster ``texts`` into topics with TF-IDF features and seeded k-means.

    ``k`` defaults to :func:`default_k` of the text count; either way it is capped by the
    number of distinct texts (after feature extraction). Cluster ids are renumbered so
    that 0 is the largest cluster (ties: the one seen first); ``clusters`` lists them in
    that order with their highest-weighted centroid terms and first two texts. Fewer than
    two texts (or texts without any feature) give a single cluster.

    Example:
        >>> texts = ["stock market shares", "market shares fall", "tennis match", "tennis open"]
        >>> report = cluster_topics(texts, k=2)
        >>> report.assignments
        [0, 0, 1, 1]
        >>> report.clusters[0]["top_terms"][:2]
        ['market', 'shares']
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    texts = [str(text) for text in texts]
    if len(texts) < 2:
        return _single_cluster(texts, top_terms)

    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # empty vocabulary: only stop words, digits or punctuation
        return _single_cluster(texts, top_terms)
    matrix.sort_indices()
    distinct = len(
        {
            (matrix.indices[start:end].tobytes(), matrix.data[start:end].tobytes())
            for start, end in zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)
        }
    )
    wanted = default_k(len(texts)) if k is None else k
    k = max(1, min(wanted, distinct))
    if k == 1:
        return _single_cluster(texts, top_terms)

    model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(matrix)
    labels = [int(label) for label in model.labels_]
    sizes = np.bincount(labels, minlength=k)
    first = {label: labels.index(label) for label in set(labels)}
    # k-means relocates empty clusters, but never report one if it happens anyway
    order = sorted(first, key=lambda label: (-sizes[label], first[label]))
    renumber = {old: new for new, old in enumerate(order)}
    terms = vectorizer.get_feature_names_out()

    clusters: list[dict[str, Any]] = []
    for old in order:
        centroid = model.cluster_centers_[old]
        ranked = sorted(
            (i for i in np.flatnonzero(centroid > 0)), key=lambda i: (-centroid[i], terms[i])
        )
        members = [text for text, label in zip(texts, labels, strict=True) if label == old]
        clusters.append(
            {
                "id": renumber[old],
                "size": int(sizes[old]),
                "top_terms": [str(terms[i]) for i in ranked[:top_terms]],
                "examples": [_example(text) for text in members[:2]],
            }
        )
    return TopicReport(
        k=len(clusters),
        clusters=clusters,
        assignments=[renumber[label] for label in labels],
        inertia=float(model.inertia_),
    )


def plot_topic_sizes(report: TopicReport, path: str | Path) -> Path:
    """Write a PNG horizontal bar chart of cluster sizes, bars labelled by top-3 terms.

    Uses matplotlib's Agg canvas directly (no pyplot state, no display needed). CJK labels
    use an installed CJK font when there is one; otherwise missing glyphs are drawn as
    boxes, silently.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        report = cluster_topics(["tax law", "tax code", "heart rate", "heart attack"], k=2)
        plot_topic_sizes(report, "topics.png")  # PosixPath('topics.png')
    """
    from ft_plugin.utils.plots import font_family, new_figure, save_png

    path = Path(path)
    clusters = report.clusters
    labels = [
        f"#{cluster['id']}: {', '.join(cluster['top_terms'][:3]) or '(no terms)'}"
        for cluster in clusters
    ]
    sizes = [cluster["size"] for cluster in clusters]
    family = font_family()
    figure, axes = new_figure(8, max(2.0, 0.45 * len(clusters) + 1.2))
    positions = list(range(len(clusters)))
    axes.barh(positions, sizes, color="tab:blue")
    axes.set_yticks(positions, labels, fontfamily=family)
    axes.invert_yaxis()  # largest cluster on top
    for position, size in zip(positions, sizes, strict=True):
        axes.annotate(
            str(size),
            (size, position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    axes.set_xlabel("texts")
    axes.set_title(f"Topic sizes (k={report.k})")
    axes.margins(x=0.1)
    return save_png(figure, path)
