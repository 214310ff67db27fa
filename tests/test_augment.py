"""Augmentation: slot filling, synonym replacement, back-translation (fake translator)."""

from __future__ import annotations

import copy

import pytest

from ft_plugin.data.augment import AugmentReport, fill_slots, synonym_replace
from ft_plugin.data.back_translation import HFTranslator, Translator, back_translate

# --------------------------------------------------------------------------- fill_slots

PATTERN = {
    "instruction": "What is a normal dose of {drug} for {group}?",
    "output": "For {group}, the usual dose of {drug} is on the {drug} label.",
}
SLOTS = {"drug": ["aspirin", "ibuprofen", "paracetamol"], "group": ["adults", "children"]}


def test_fill_slots_all_combinations_in_order_and_consistent():
    rows = fill_slots([PATTERN], SLOTS)
    assert len(rows) == 6
    pairs = [(row["instruction"], row["output"]) for row in rows]
    assert pairs[0] == (
        "What is a normal dose of aspirin for adults?",
        "For adults, the usual dose of aspirin is on the aspirin label.",
    )
    # product order: drug (first placeholder) outer, group inner
    assert [row["instruction"].split(" of ")[1] for row in rows] == [
        "aspirin for adults?",
        "aspirin for children?",
        "ibuprofen for adults?",
        "ibuprofen for children?",
        "paracetamol for adults?",
        "paracetamol for children?",
    ]
    for row in rows:  # one value per slot across all fields of the row
        drug = next(d for d in SLOTS["drug"] if d in row["instruction"])
        group = next(g for g in SLOTS["group"] if g in row["instruction"])
        assert row["output"] == f"For {group}, the usual dose of {drug} is on the {drug} label."
        assert row["_augmented"] == "template"
    assert PATTERN["instruction"].endswith("{group}?")  # pattern untouched


def test_fill_slots_several_patterns_non_strings_and_cjk():
    patterns = [
        {"instruction": "{drug} 的常用剂量是多少？", "output": "请参阅{drug}说明书。", "label": 3},
        {"instruction": "Plain question", "output": "no slots"},
    ]
    rows = fill_slots(patterns, {"drug": ["阿司匹林", "布洛芬"]})
    assert [row["instruction"] for row in rows] == [
        "阿司匹林 的常用剂量是多少？",
        "布洛芬 的常用剂量是多少？",
        "Plain question",
    ]
    assert rows[1]["output"] == "请参阅布洛芬说明书。" and rows[1]["label"] == 3


def test_fill_slots_limit_is_seeded_sample_in_order():
    full = fill_slots([PATTERN], SLOTS)
    some = fill_slots([PATTERN], SLOTS, limit=4, seed=1)
    assert len(some) == 4
    assert [full.index(row) for row in some] == sorted(full.index(row) for row in some)
    assert some == fill_slots([PATTERN], SLOTS, limit=4, seed=1)
    samples = {
        tuple(r["instruction"] for r in fill_slots([PATTERN], SLOTS, limit=2, seed=s))
        for s in range(8)
    }
    assert len(samples) > 1
    assert fill_slots([PATTERN], SLOTS, limit=100) == full
    assert fill_slots([PATTERN], SLOTS, limit=0) == []


def test_fill_slots_limit_handles_huge_products_without_enumerating():
    slots = {f"s{i}": [str(v) for v in range(10)] for i in range(9)}  # 10**9 combinations
    pattern = {"text": " ".join("{" + name + "}" for name in slots)}
    rows = fill_slots([pattern], slots, limit=5, seed=0)
    assert len(rows) == 5 and all(len(row["text"].split()) == 9 for row in rows)


def test_fill_slots_unknown_slot_and_escaping():
    with pytest.raises(ValueError, match="unknown slot 'dose'"):
        fill_slots([{"instruction": "{drug} at {dose}"}], {"drug": ["x"]})
    with pytest.raises(ValueError, match="slot 'drug' has no values"):
        fill_slots([{"instruction": "{drug}"}], {"drug": []})
    with pytest.raises(ValueError, match="not a plain slot name"):
        fill_slots([{"instruction": "{drug.name}"}], {"drug": ["x"]})
    with pytest.raises(ValueError, match="malformed template"):
        fill_slots([{"instruction": "a { b"}], {})
    rows = fill_slots(
        [{"instruction": 'Return {{"drug": "{drug}"}} as JSON', "output": "{{}}"}],
        {"drug": ["aspirin"]},
    )
    assert rows[0]["instruction"] == 'Return {"drug": "aspirin"} as JSON'
    assert rows[0]["output"] == "{}"


# --------------------------------------------------------------------------- synonyms

TABLE = {
    "hypertension": ["high blood pressure"],
    "high blood pressure": ["hypertension"],
    "blood pressure": ["BP"],
    "高血压": ["血压高"],
    "心肌梗死": ["心梗"],
    "心肌": ["心脏肌肉"],
}


def _one(text: str, table: dict | None = None) -> list[str]:
    rows = [{"instruction": text, "output": "unchanged"}]
    out = synonym_replace(rows, table or TABLE, fields=["instruction"])
    assert all(row["output"] == "unchanged" and row["_augmented"] == "synonym" for row in out)
    return [row["instruction"] for row in out]


def test_english_whole_word_and_case_preserving():
    assert _one("Hypertension is common.") == ["High blood pressure is common."]
    assert _one("Treat hypertension early.") == ["Treat high blood pressure early."]
    assert _one("HYPERTENSION clinic") == ["HIGH BLOOD PRESSURE clinic"]
    assert _one("The patient is hypertensive.") == []  # not a whole-word match
    assert _one("prehypertension and hypertensions") == []
    assert _one("患者有hypertension史") == ["患者有high blood pressure史"]


def test_multi_word_and_longest_term_wins():
    # "high blood pressure" beats the shorter, overlapping "blood pressure"
    assert _one("High blood pressure kills.") == ["Hypertension kills."]
    assert _one("High  blood\npressure kills.") == ["Hypertension kills."]  # any whitespace
    assert _one("Check blood pressure daily.") == ["Check BP daily."]
    # longest wins even when the shorter term starts earlier
    table = {"blood": ["plasma"], "blood pressure monitor": ["sphygmomanometer"]}
    assert _one("a blood pressure monitor", table) == ["a sphygmomanometer"]


def test_chinese_substring_matching():
    assert _one("他患有高血压多年。") == ["他患有血压高多年。"]
    assert _one("急性心肌梗死的治疗") == ["急性心梗的治疗"]  # longest: 心肌梗死 over 心肌
    assert _one("心肌炎") == ["心脏肌肉炎"]
    assert _one("糖尿病的治疗") == []


def test_no_match_rows_give_no_variant_and_inputs_untouched():
    rows = [
        {"instruction": "Nothing to see here", "output": "hypertension"},
        {"instruction": "Hypertension and 高血压", "output": "x"},
        {"instruction": 42, "output": "x"},
    ]
    before = copy.deepcopy(rows)
    out = synonym_replace(rows, TABLE, fields=["instruction"])
    assert rows == before
    assert out == [
        {"instruction": "High blood pressure and 血压高", "output": "x", "_augmented": "synonym"}
    ]


def test_per_row_distinct_variants_probability_and_seed():
    table = {"doctor": ["physician", "clinician", "medic"]}
    rows = [{"q": "Ask the doctor about the doctor bill"}]
    out = synonym_replace(rows, table, fields=["q"], per_row=3, seed=0)
    texts = [row["q"] for row in out]
    assert len(texts) == 3 and len(set(texts)) == 3
    assert all("doctor" not in text for text in texts)
    assert out == synonym_replace(rows, table, fields=["q"], per_row=3, seed=0)
    # only one synonym: at most one distinct variant, however many are asked for
    assert len(synonym_replace(rows, {"bill": ["invoice"]}, fields=["q"], per_row=5)) == 1
    # probability: some occurrences are kept; never a variant identical to the original
    partial = synonym_replace(rows, table, fields=["q"], per_row=4, probability=0.5, seed=2)
    assert partial and all(row["q"] != rows[0]["q"] for row in partial)
    assert any("doctor" in row["q"] for row in partial)
    assert synonym_replace(rows, table, fields=["q"], probability=0.0) == []


# --------------------------------------------------------------------------- back-translation


class FakeTranslator:
    """en→fr tags the text; fr→en rewrites a few words, leaves "identical" text as it was."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str, str]] = []

    def __call__(self, texts: list[str], source: str, target: str) -> list[str]:
        self.calls.append((list(texts), source, target))
        if target == "fr":
            return [f"[fr] {text}" for text in texts]
        return [text.removeprefix("[fr] ").replace("big", "large") for text in texts]


def test_back_translate_batches_and_skips_identical():
    rows = [{"instruction": f"A big question {i}", "output": f"answer {i}"} for i in range(5)] + [
        {"instruction": "identical", "output": "also identical"}
    ]
    before = copy.deepcopy(rows)
    translator = FakeTranslator()
    assert isinstance(translator, Translator)
    out = back_translate(rows, translator, fields=["instruction", "output"], batch_size=4)
    assert rows == before
    # 12 distinct texts: 3 forward batches (4, 4, 4), then 3 backward ones
    assert [(len(texts), src, tgt) for texts, src, tgt in translator.calls] == [
        (4, "en", "fr"), (4, "en", "fr"), (4, "en", "fr"),
        (4, "fr", "en"), (4, "fr", "en"), (4, "fr", "en"),
    ]  # fmt: skip
    assert len(out) == 5  # the all-identical row gives no variant
    assert out[0] == {
        "instruction": "A large question 0",
        "output": "answer 0",  # came back unchanged: original kept
        "_augmented": "back_translation",
    }


def test_back_translate_deduplicates_and_checks_lengths():
    translator = FakeTranslator()
    rows = [{"text": "big dog"}, {"text": "big dog"}, {"text": ""}, {"label": 1}]
    out = back_translate(rows, translator, fields=["text"], pivot="fr", batch_size=16)
    assert [row["text"] for row in out] == ["large dog", "large dog"]
    assert [texts for texts, _, _ in translator.calls] == [["big dog"], ["[fr] big dog"]]

    def broken(texts, source, target):
        return texts[:-1]

    with pytest.raises(ValueError, match="returned 0 texts for a batch of 1"):
        back_translate([{"text": "x"}], broken, fields=["text"])
    with pytest.raises(ValueError, match="batch_size"):
        back_translate(rows, translator, fields=["text"], batch_size=0)


def test_hf_translator_is_lazy():
    translator = HFTranslator("org/forward-model", "org/backward-model")
    assert isinstance(translator, Translator)
    assert translator._loaded == {}  # nothing loaded or downloaded until called
    assert translator([], "en", "fr") == []


def test_hf_translator_runs_a_local_seq2seq_model(tmp_path):
    """Plumbing only, offline: a tiny random BART saved locally (its output is noise)."""
    import torch
    from tiny import tiny_tokenizer
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=259,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=258,
        eos_token_id=257,
        bos_token_id=256,
        decoder_start_token_id=256,
    )
    forward, backward = tmp_path / "en-fr", tmp_path / "fr-en"
    for folder in (forward, backward):
        BartForConditionalGeneration(config).save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
    translator = HFTranslator(str(forward), str(backward), max_new_tokens=4)
    out = translator(["hello", "a longer text"], "en", "fr")
    assert len(out) == 2 and all(isinstance(text, str) for text in out)
    assert list(translator._loaded) == [str(forward)]
    translator(out, "fr", "en")
    assert list(translator._loaded) == [str(forward), str(backward)]


# --------------------------------------------------------------------------- report


def test_augment_report_counts_kinds():
    rows = [{"text": "a"}, {"text": "b"}]
    rows += synonym_replace([{"text": "the doctor"}], {"doctor": ["physician"]}, fields=["text"])
    rows += fill_slots([{"text": "{x}"}], {"x": ["1", "2"]})
    report = AugmentReport.from_rows(rows)
    assert report.to_dict() == {
        "original": 2,
        "augmented": {"synonym": 1, "template": 2},
        "total": 5,
    }
