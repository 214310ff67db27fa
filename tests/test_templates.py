"""Domain templates: builtins, sample data, rendering, mappings, preview masks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import cli, tiny_recipe
from tiny import tiny_tokenizer

from ft_plugin import registry
from ft_plugin.config.schema import DatasetSection
from ft_plugin.data.formats import convert_rows
from ft_plugin.data.preview import LOSS_CLOSE, LOSS_OPEN, marked_text, render_example
from ft_plugin.data.reading import read_rows
from ft_plugin.data.templates import load_template
from ft_plugin.errors import DataError, RecipeError

BUILTINS = [
    "medical",
    "medical-pubmedqa",
    "legal",
    "legal-classification",
    "finance",
    "finance-sentiment",
]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_template_renders_every_sample_row(name: str) -> None:
    template = load_template(name)
    assert name in registry.templates()
    rows = read_rows(f"builtin:{name}")
    converted = convert_rows(rows, DatasetSection(path=f"builtin:{name}", type=name))
    assert not converted.dropped, converted.dropped
    assert len(converted.examples) == len(rows) >= 60
    first = converted.examples[0]
    assert first["prompt"][0] == {"role": "system", "content": template.system_prompt.strip()}
    if template.labels:
        answers = {e["completion"][0]["content"] for e in converted.examples}
        assert answers == set(template.labels.values)
        assert {"accuracy", "macro_f1"} <= set(template.metrics)
    assert template.disclaimer


def test_medical_sample_has_chinese_rows() -> None:
    rows = read_rows("builtin:medical")
    chinese = [r for r in rows if CJK.search(r["instruction"]) and CJK.search(r["output"])]
    assert len(chinese) >= 20


def test_empty_optional_input_leaves_no_blank_lines() -> None:
    template = load_template("medical")
    example = template.render(
        {"instruction": "What is a fever?", "input": "", "output": "A high temperature."}
    )
    assert example["prompt"][1]["content"] == "What is a fever?"
    with_input = template.render({"instruction": "Q?", "input": "45-year-old", "output": "A."})
    assert with_input["prompt"][1]["content"] == "Q?\n\n45-year-old"


def test_labels_are_normalised_through_aliases_and_unknown_labels_dropped() -> None:
    spec = DatasetSection(path="x", type="finance-sentiment")
    rows = [{"text": "Shares rise", "label": 1}, {"text": "Shares fall", "label": "Negative"},
            {"text": "Flat day", "label": "sideways"}]  # fmt: skip
    converted = convert_rows(rows, spec)
    assert [e["completion"][0]["content"] for e in converted.examples] == ["bullish", "bearish"]
    assert converted.dropped == {"unknown_label": 1}


def test_recipe_field_mappings_reach_template_fields() -> None:
    spec = DatasetSection(
        path="x",
        type="medical-pubmedqa",
        field_instruction="Q",
        field_input="ABSTRACT",
        field_output="decision",
    )
    rows = [{"Q": "Does X help?", "ABSTRACT": "X helped in a trial.", "decision": "Yes"}]
    example = convert_rows(rows, spec).examples[0]
    assert example["prompt"][1]["content"] == (
        "Abstract: X helped in a trial.\n\nQuestion: Does X help?\nAnswer yes, no or maybe."
    )
    assert example["completion"][0]["content"] == "yes"


def test_chat_rows_get_the_template_system_prompt() -> None:
    spec = DatasetSection(path="x", type="legal")
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    ]
    example = convert_rows(rows, spec).examples[0]
    assert example["prompt"][0]["role"] == "system" and example["prompt"][1]["content"] == "Hi"


def test_template_from_a_path_and_bad_templates_are_located(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(
        "name: mine\ndomain: test\ndescription: d\nfields: {q: [q], a: [a]}\nrequired: [q, a]\n"
        "user: '{q}'\nassistant: '{a}'\n"
    )
    assert load_template(str(good)).name == "mine"
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("user: '{q}'", "user: '{question}'"))
    with pytest.raises(
        Exception, match=r"bad.yaml: template: user: placeholder \{question\} is not one"
    ):
        load_template(str(bad))
    with pytest.raises(DataError, match="no template file or registered template"):
        load_template("no-such-template")
    padded = tmp_path / "padded.yaml"  # a format spec would build 2 GB a row
    padded.write_text(good.read_text().replace("user: '{q}'", "user: '{q:>2000000000}'"))
    with pytest.raises(Exception, match=r"placeholder \{q:>2000000000\} has a format spec"):
        load_template(str(padded))


def test_preview_masks_match_what_sft_trainer_trains_on(tmp_path: Path) -> None:
    from ft_plugin.engine import prepare_run

    loaded = tiny_recipe(tmp_path, "lora", extra="", sequence_len=96)
    prepared = prepare_run(loaded, str(tmp_path / "run"))
    tokenizer = prepared.trainer.processing_class
    for index in range(5):
        trainer_row = prepared.trainer.train_dataset[index]
        ours = render_example(tokenizer, prepared.data.train[index], sequence_len=96)
        assert ours.input_ids == list(trainer_row["input_ids"])
        trained = [int(label != -100) for label in trainer_row["labels"]]
        assert ours.loss_mask == trained


def test_marked_text_wraps_exactly_the_answer() -> None:
    tokenizer = tiny_tokenizer()
    example = {"prompt": [{"role": "user", "content": "发烧怎么办？"}],
               "completion": [{"role": "assistant", "content": "多喝水。"}]}  # fmt: skip
    rendered = render_example(tokenizer, example, sequence_len=512)
    text = marked_text(tokenizer, rendered)
    assert text.endswith(f"{LOSS_OPEN}多喝水。<|im_end|>\n{LOSS_CLOSE}")
    assert text.count(LOSS_OPEN) == 1


def test_cli_preview_shows_the_marked_answer_and_warns_on_truncation(tmp_path: Path) -> None:
    data = tmp_path / "long.jsonl"
    long_output = "word " * 400
    data.write_text(json.dumps({"instruction": "Explain.", "output": long_output}) + "\n")
    result = cli("templates", "preview", "medical", "--data", str(data), "-n", "1", "--sequence-len", "300",
                 "--base-model", str(tiny_recipe(tmp_path).recipe.base_model))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "<|im_start|>assistant\n" + LOSS_OPEN + "word word" in result.stdout
    assert "warning: row 1 has" in result.stderr and "training drops the row" in result.stderr


def test_cli_templates_list_and_show() -> None:
    listing = cli("templates", "list")
    for name in BUILTINS:
        assert name in listing.stdout
    assert "classification" in listing.stdout
    shown = cli("templates", "show", "finance-sentiment")
    assert "bearish" in shown.stdout
    missing = cli("templates", "show", "nope")
    assert missing.returncode == 2 and missing.stderr.startswith("error: nope: no such template")


@pytest.mark.parametrize("name", BUILTINS)
def test_preview_marks_exactly_the_answer_for_each_builtin(name: str) -> None:
    tokenizer = tiny_tokenizer()
    rows = read_rows(f"builtin:{name}")[:3]
    for example in convert_rows(rows, DatasetSection(path="x", type=name)).examples:
        text = marked_text(tokenizer, render_example(tokenizer, example, sequence_len=4096))
        answer = example["completion"][0]["content"]
        assert text.count(LOSS_OPEN) == 1
        assert text.endswith(f"<|im_start|>assistant\n{LOSS_OPEN}{answer}<|im_end|>\n{LOSS_CLOSE}")


@pytest.mark.parametrize("name", sorted(registry.recipes()))
def test_every_builtin_recipe_builds_its_training_data(name: str) -> None:
    from ft_plugin.config import load_recipe
    from ft_plugin.data import build_training_data

    data = build_training_data(load_recipe(name).recipe)
    assert len(data.train) >= 50 and data.eval is not None and len(data.eval) >= 5
    assert set(data.train.column_names) == {"prompt", "completion"}


def test_a_template_with_yaml_aliases_is_refused_before_it_expands(tmp_path: Path) -> None:
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(laughs) + "\n")
    with pytest.raises(RecipeError, match="anchors and aliases are not allowed"):
        load_template(str(bomb))
