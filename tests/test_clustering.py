"""Topic clustering on a small English + Chinese corpus, and the topic-size chart."""

from __future__ import annotations

import warnings

import pytest

from ft_plugin.data.clustering import (
    TopicReport,
    analyze,
    cluster_topics,
    default_k,
    plot_topic_sizes,
)

CORPUS = {
    "baking": [
        "Bake the bread dough in a hot oven until the crust is golden.",
        "Knead the dough, let the bread rise, then bake it in the oven.",
        "Oven temperature matters when you bake bread with a crisp crust.",
        "A sourdough bread needs a long rise before the dough goes in the oven.",
    ],
    "football": [
        "The striker scored a goal in the football match against the champions.",
        "The goalkeeper saved a penalty and the football team won the match.",
        "A late goal by the striker decided the football league match.",
        "The football coach praised the goalkeeper after the match.",
    ],
    "stocks": [
        "Stock prices fell as investors sold shares on the market.",
        "Investors bought shares when the stock market rallied.",
        "The stock market index rose and shares of banks gained.",
        "Shares dropped and investors worried about the stock market.",
    ],
    "medicine_zh": [
        "医生建议高血压患者每天按时服药并测量血压。",
        "高血压患者应该少吃盐，医生会定期检查血压。",
        "这位医生治疗高血压，患者的血压已经下降。",
        "患者服药后血压稳定，医生说高血压需要长期管理。",
    ],
    "weather_zh": [
        "明天天气预报有大雨，气温将明显下降。",
        "天气预报说周末气温升高，没有降雨。",
        "今天的天气很热，气温超过三十五度，预报无雨。",
        "气象台发布天气预报：大雨过后气温回升。",
    ],
}


def _texts_and_topics() -> tuple[list[str], list[str]]:
    texts, topics = [], []
    for topic, items in CORPUS.items():
        texts += items
        topics += [topic] * len(items)
    return texts, topics


def _partition(labels: list) -> set[frozenset[int]]:
    groups: dict = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, set()).add(index)
    return {frozenset(group) for group in groups.values()}


def test_analyzer_mixes_words_and_cjk_bigrams():
    assert analyze("The Blood-Pressure of 2024 高血压, and 血 X") == [
        "blood",
        "pressure",
        "高血",
        "血压",
        "血",
    ]
    assert analyze("the and of") == []


def test_default_k_heuristic():
    assert [default_k(n) for n in (2, 8, 20, 50, 72, 1000)] == [2, 2, 3, 5, 6, 10]


def test_clusters_recover_english_and_chinese_topics():
    texts, topics = _texts_and_topics()
    report = cluster_topics(texts, k=5, seed=0)
    assert isinstance(report, TopicReport) and report.k == 5
    assert len(report.assignments) == len(texts)
    assert _partition(report.assignments) == _partition(topics)
    assert [cluster["id"] for cluster in report.clusters] == [0, 1, 2, 3, 4]
    assert all(cluster["size"] == 4 for cluster in report.clusters)
    # ties in size: clusters numbered in order of first appearance
    assert report.assignments[::4] == [0, 1, 2, 3, 4]
    terms = {
        topic: report.clusters[report.assignments[i * 4]]["top_terms"]
        for i, topic in enumerate(CORPUS)
    }
    assert "bread" in terms["baking"][:3] and "football" in terms["football"][:3]
    assert "血压" in terms["medicine_zh"] and "天气" in terms["weather_zh"]
    assert report.clusters[0]["examples"] == [
        CORPUS["baking"][0],
        "Knead the dough, let the bread rise, then bake it in the oven.",
    ]
    assert report.inertia > 0
    assert report == cluster_topics(texts, k=5, seed=0)  # seeded, deterministic


def test_sizes_sorted_descending_and_examples_truncated():
    texts = CORPUS["stocks"] + CORPUS["weather_zh"][:2] + ["word " * 40]
    report = cluster_topics(texts, k=2, seed=0)
    sizes = [cluster["size"] for cluster in report.clusters]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == len(texts)
    examples = [text for cluster in report.clusters for text in cluster["examples"]]
    assert all(len(text) <= 80 for text in examples)
    data = report.to_dict()
    assert set(data) == {"k", "clusters", "assignments", "inertia"}


def test_degenerate_inputs():
    assert cluster_topics([]).to_dict() == {
        "k": 1,
        "clusters": [{"id": 0, "size": 0, "top_terms": [], "examples": []}],
        "assignments": [],
        "inertia": 0.0,
    }
    one = cluster_topics(["Only one stock market text"])
    assert one.k == 1 and one.assignments == [0] and one.clusters[0]["size"] == 1
    assert "stock" in one.clusters[0]["top_terms"]
    # k capped by distinct texts: 3 copies of two texts -> 2 clusters
    dup = cluster_topics(["stock market"] * 3 + ["football goal"] * 3, k=5)
    assert dup.k == 2 and _partition(dup.assignments) == {
        frozenset({0, 1, 2}),
        frozenset({3, 4, 5}),
    }
    # nothing but stop words / punctuation: one cluster, no exception
    empty = cluster_topics(["the and", "of the", "!!!"])
    assert empty.k == 1 and empty.assignments == [0, 0, 0]
    with pytest.raises(ValueError, match="k must be"):
        cluster_topics(["a b", "c d"], k=0)


def test_plot_topic_sizes_writes_png_without_glyph_warnings(tmp_path):
    texts, _ = _texts_and_topics()
    report = cluster_topics(texts, k=5, seed=0)
    path = tmp_path / "topics.png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert plot_topic_sizes(report, path) == path
    assert not [w for w in caught if "Glyph" in str(w.message)]
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in data[-16:]
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
