"""One CJK definition (ft_plugin.utils.text): every module sees rare Han characters the same way."""

from __future__ import annotations

from ft_plugin.continual.router import AdapterRouter
from ft_plugin.data.cleaning import dedup
from ft_plugin.data.clustering import analyze
from ft_plugin.evaluate.classification import parse_label
from ft_plugin.evaluate.text_metrics import CJKTokenizer, contains_cjk
from ft_plugin.utils.text import CJK_RE, has_cjk, is_cjk

RARE = "\U00020000\u3400"  # 𠀀 (extension B) and 㐀 (extension A)


def test_rare_han_characters_are_cjk() -> None:
    assert all(is_cjk(ch) for ch in "高血压𠀀㐀\U0002a6a5\U00030000かなカナ한글")
    assert not any(is_cjk(ch) for ch in "aZ9_，。 é")
    assert has_cjk("x𠀀") and contains_cjk("x𠀀") and CJK_RE.fullmatch("𠀀")


def test_dedup_and_router_features_agree_on_rare_han() -> None:
    text = f"Blood pressure 高血压{RARE}病"
    dedup_chars = {s[2:] for s in dedup.shingles(text) if s.startswith("c:")}
    router_bigrams = [token for token in analyze(text) if has_cjk(token)]
    assert dedup_chars == set("高血压𠀀㐀病")
    # one CJK run for both: the router's bigrams cross the rare characters
    assert router_bigrams == ["高血", "血压", "压𠀀", "𠀀㐀", "㐀病"]
    assert set("".join(router_bigrams)) == dedup_chars


def test_router_routes_on_rare_han_characters() -> None:
    router = AdapterRouter()
    router.fit({"rare": [f"{RARE}字", f"字{RARE}"] * 5, "common": ["高血压", "血压高"] * 5})
    assert router.route(f"请解释{RARE}") == "rare"


def test_metrics_and_labels_treat_rare_han_as_cjk() -> None:
    assert CJKTokenizer().tokenize(f"GDP{RARE}") == ["gdp", "𠀀", "㐀"]
    assert parse_label(f"答案是{RARE}", ["yes", RARE]) == RARE
    assert parse_label("𠀀yes", ["yes", "no"]) == "yes"  # a rare Han letter is no word letter
