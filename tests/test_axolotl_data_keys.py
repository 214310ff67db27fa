"""Axolotl's dataset keys: where rows come from (split slices, files, folders, Hub ids,
streaming, pre-training corpora), how they are merged and cached, and how chat rows become
training text (templates by Axolotl's names, ShareGPT fields, loss per turn)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import datasets
import pytest
from tiny import save_tiny_model, tiny_tokenizer

from ft_plugin.config import axolotl, load_recipe
from ft_plugin.config.schema import DatasetSection, Recipe
from ft_plugin.config.schema.datasets import CHAT_TEMPLATE_NAMES
from ft_plugin.config.trust import remote_problems
from ft_plugin.config.yaml_source import parse_yaml
from ft_plugin.data import build, build_training_data, reading
from ft_plugin.data.chat import ChatRendering, chat_turns
from ft_plugin.data.formats import convert_rows
from ft_plugin.data.preview import render_example
from ft_plugin.data.reading import read_rows, stream_rows
from ft_plugin.data.template_choice import resolve_chat_template, template_names
from ft_plugin.errors import DataError, RecipeError

SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello!"},
        {"from": "human", "value": "2+2?"},
        {"from": "gpt", "value": "4."},
    ]
}


@pytest.fixture(autouse=True)
def schema_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that is a schema field is honoured even while keys.yaml still lists it (the
    lead removes such entries; until then screening would refuse the keys under test)."""
    table = axolotl.key_table()

    def ours(key: str) -> bool:
        fields = DatasetSection.model_fields if key.startswith("datasets.") else Recipe.model_fields
        return key.removeprefix("datasets.") in fields

    kept = dataclasses.replace(
        table,
        no_effect={k: v for k, v in table.no_effect.items() if not ours(k)},
        refused={k: v for k, v in table.refused.items() if not ours(k)},
    )
    monkeypatch.setattr(axolotl, "key_table", lambda: kept)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def qa_rows(count: int, tag: str = "q") -> list[dict]:
    return [{"instruction": f"{tag}{i}?", "output": f"answer {i}."} for i in range(count)]


def recipe_at(tmp_path: Path, body: str, model: Path | None = None) -> Recipe:
    text = f"base_model: {model}\n" if model else ""
    path = tmp_path / "recipe.yaml"
    path.write_text(text + body, encoding="utf-8")
    return load_recipe(str(path)).recipe


def asked(rows: list[dict]) -> list[str]:
    """The user turn of each example (what row it came from)."""
    return [r["prompt"][-1]["content"] for r in rows]


# ── datasets[].split and where rows come from ───────────────────────────────────────────


@pytest.mark.parametrize("split", ["train[:20%]", "train[10:100]", "train[-5%:]", "train[3:7]"])
def test_split_slices_a_local_file_as_datasets_does(tmp_path: Path, split: str) -> None:
    data = jsonl(tmp_path / "qa.jsonl", qa_rows(50))
    expected = datasets.load_dataset("json", data_files=str(data), split=split)
    assert read_rows(str(data), split=split) == list(expected)
    recipe = recipe_at(tmp_path, f"datasets:\n  - path: {data}\n    split: '{split}'\n"
                                 "shuffle_merged_datasets: false\n")  # fmt: skip
    assert asked(list(build_training_data(recipe).train)) == [r["instruction"] for r in expected]


def test_split_works_on_csv_parquet_arrow_files_and_folders(tmp_path: Path) -> None:
    rows = qa_rows(40)
    table = datasets.Dataset.from_list(rows)
    table.to_csv(tmp_path / "qa.csv", index=False)
    table.to_parquet(tmp_path / "qa.parquet")
    for name in ("qa.csv", "qa.parquet"):
        assert read_rows(str(tmp_path / name), split="train[-5%:]") == rows[-2:]
    folder = tmp_path / "files"
    folder.mkdir()
    jsonl(folder / "part-a.jsonl", rows[:20])
    jsonl(folder / "part-b.jsonl", rows[20:])
    assert read_rows(str(folder), split="train[:25%]") == list(
        datasets.load_dataset(str(folder), split="train[:25%]")
    )
    saved = tmp_path / "saved"
    datasets.DatasetDict(
        {"train": table, "test": datasets.Dataset.from_list(rows[:4])}
    ).save_to_disk(str(saved))
    assert read_rows(str(saved), split="test[:2]") == rows[:2]
    assert read_rows(str(saved), split="train[10:12]+test[-1:]") == rows[10:12] + rows[3:4]
    with pytest.raises(DataError, match="no split 'validation'; its splits: train, test"):
        read_rows(str(saved), split="validation")
    arrow = next((saved / "train").glob("*.arrow"))
    assert read_rows(str(arrow), split="train[:3]") == rows[:3]


def test_a_file_is_one_split_whatever_its_name(tmp_path: Path) -> None:
    data = jsonl(tmp_path / "ultrachat.jsonl", qa_rows(10))
    assert read_rows(str(data), split="train_sft[:2]") == qa_rows(2)
    with pytest.raises(DataError, match="names 2 splits; a file is one split"):
        read_rows(str(data), split="train[:2]+test[:2]")


def test_hub_ids_are_read_with_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(path, name=None, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append({"path": path, "name": name, **kwargs})
        return datasets.Dataset.from_list(qa_rows(5))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    rows = read_rows("org/medical-qa", split="train[:10%]", name="en", data_files=["a.jsonl"],
                     revision="v1.0")  # fmt: skip
    assert rows == qa_rows(5)
    assert calls == [{"path": "org/medical-qa", "name": "en", "split": "train[:10%]",
                      "data_files": ["a.jsonl"], "revision": "v1.0", "streaming": False}]  # fmt: skip
    spec = DatasetSection(path="org/corpus", split="train[:2]", skip=1, type="completion")
    assert list(stream_rows(spec)) == qa_rows(5)[1:2]  # the range, then skip, read lazily
    assert calls[-1]["streaming"] is True and calls[-1]["split"] == "train"


def test_a_malformed_split_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as error:
        recipe_at(tmp_path, "datasets:\n  - path: x.jsonl\n    split: 'train[:20%%]'\n")
    assert "recipe.yaml:3: datasets.0.split: 'train[:20%%]' is not a split" in str(error.value)


# ── dataset_prepared_path ────────────────────────────────────────────────────────────────


def test_prepared_rows_are_reused_until_a_data_key_the_data_or_the_tokenizer_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = jsonl(tmp_path / "qa.jsonl", qa_rows(30))
    reads: list[str] = []
    read = reading.read_rows
    monkeypatch.setattr(
        reading, "read_rows", lambda path, **kw: reads.append(path) or read(path, **kw)
    )
    cache = tmp_path / "prepared"
    body = f"datasets:\n  - path: {data}\ndataset_prepared_path: {cache}\nsequence_len: 64\n"
    recipe, tokenizer = recipe_at(tmp_path, body), tiny_tokenizer()

    first = build_training_data(recipe, tokenizer)
    assert len(reads) == 1 and first.notes[-1].startswith("dataset_prepared_path: saved")
    again = build_training_data(recipe, tokenizer)
    assert len(reads) == 1, "the second run read the source again"
    assert again.notes[-1].startswith("dataset_prepared_path: read the prepared rows")
    assert list(again.train) == list(first.train) and again.lengths == first.lengths

    build_training_data(recipe.model_copy(update={"val_set_size": 0.2}), tokenizer)
    assert len(reads) == 2  # a changed data key prepares again
    tokenizer.add_tokens(["<extra>"])
    build_training_data(recipe, tokenizer)
    assert len(reads) == 3  # so does a changed tokenizer
    jsonl(data, qa_rows(31))
    build_training_data(recipe, tokenizer)
    assert len(reads) == 4  # and an edited data file
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 4


# ── dedup and merging order ──────────────────────────────────────────────────────────────


def test_exact_deduplication_drops_repeats_and_says_how_many(tmp_path: Path) -> None:
    a = jsonl(tmp_path / "a.jsonl", qa_rows(6) + qa_rows(2))  # 2 repeats inside a
    b = jsonl(tmp_path / "b.jsonl", qa_rows(1) + qa_rows(3, tag="b"))  # 1 repeat of a
    body = f"datasets:\n  - path: {a}\n  - path: {b}\n"
    plain = build_training_data(recipe_at(tmp_path, body))
    deduped = build_training_data(recipe_at(tmp_path, body + "dataset_exact_deduplication: true\n"))
    assert len(plain.train) == 12 and len(deduped.train) == 9
    assert deduped.dropped["duplicate"] == 3
    assert "dataset_exact_deduplication: dropped 3 duplicate rows" in deduped.notes
    assert sorted(asked(list(deduped.train))) == sorted({*asked(list(plain.train))})


def test_shuffle_merged_datasets_false_keeps_the_datasets_in_order(tmp_path: Path) -> None:
    a = jsonl(tmp_path / "a.jsonl", qa_rows(8, tag="a"))
    b = jsonl(tmp_path / "b.jsonl", qa_rows(8, tag="b"))
    body = f"datasets:\n  - path: {a}\n  - path: {b}\nval_set_size: 2\n"
    in_order = [f"a{i}?" for i in range(8)] + [f"b{i}?" for i in range(8)]
    kept = build_training_data(recipe_at(tmp_path, body + "shuffle_merged_datasets: false\n"))
    assert asked(list(kept.train)) == in_order[:-2] and asked(list(kept.eval)) == in_order[-2:]
    shuffled = build_training_data(recipe_at(tmp_path, body))
    assert asked(list(shuffled.train)) != in_order[2:] and len(shuffled.train) == 14
    each = build_training_data(recipe_at(tmp_path, body + "shuffle_merged_datasets: false\n"
                                         "shuffle_before_merging_datasets: true\n"))  # fmt: skip
    rows = asked(list(each.train)) + asked(list(each.eval))
    assert sorted(rows[:8]) == in_order[:8] and sorted(rows[8:]) == in_order[8:]
    assert rows != in_order  # each dataset shuffled on its own, the datasets still in order


# ── streaming and pretraining_dataset ────────────────────────────────────────────────────


def _corpus(path: Path, count: int = 12, tail: str = "") -> Path:
    docs = [{"body": f"Document {i}: " + " ".join(f"w{i}x{j}" for j in range(3 + 5 * i))}
            for i in range(count)]  # fmt: skip
    path.write_text("".join(json.dumps(d) + "\n" for d in docs) + tail, encoding="utf-8")
    return path


def test_streaming_reads_rows_as_training_goes_and_gives_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl")
    body = (f"datasets:\n  - path: {corpus}\n    type: completion\n    field: body\n"
            "max_steps: 2\nsequence_len: 24\nshuffle_merged_datasets: false\n")  # fmt: skip
    tokenizer = tiny_tokenizer()
    in_memory = build_training_data(recipe_at(tmp_path, body), tokenizer)

    def no_whole_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("streaming read the whole dataset")

    monkeypatch.setattr(reading, "read_rows", no_whole_read)
    streamed = build_training_data(recipe_at(tmp_path, body + "streaming: true\n"), tokenizer)
    assert isinstance(streamed.train, datasets.IterableDataset) and streamed.streamed
    assert list(streamed.train) == list(in_memory.train)
    assert len(in_memory.train) > 12  # long documents were cut into windows


def test_streamed_chat_rows_are_tokenized_as_in_memory(tmp_path: Path) -> None:
    chat = jsonl(
        tmp_path / "chat.jsonl", [SHAREGPT, {"conversations": SHAREGPT["conversations"][1:3]}]
    )
    qa = jsonl(tmp_path / "qa.jsonl", qa_rows(3))
    body = (f"datasets:\n  - path: {chat}\n    type: chat_template\n    field_messages: conversations\n"
            "    message_field_role: from\n    message_field_content: value\n"
            "    roles_to_train: [human, gpt]\n"
            f"  - path: {qa}\nmax_steps: 2\nsequence_len: 96\nshuffle_merged_datasets: false\n")  # fmt: skip
    tokenizer = tiny_tokenizer()
    in_memory = list(build_training_data(recipe_at(tmp_path, body), tokenizer).train)
    streamed = list(
        build_training_data(recipe_at(tmp_path, body + "streaming: true\n"), tokenizer).train
    )
    assert streamed == in_memory and len(streamed) == 5
    assert all("completion_mask" in row for row in streamed)


def test_streaming_does_not_read_the_whole_file_first(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl", tail="{not json at the end\n")
    body = (f"datasets:\n  - path: {corpus}\n    type: completion\n    field: body\n"
            "max_steps: 2\nsequence_len: 24\n")  # fmt: skip
    with pytest.raises(DataError, match=r"corpus.jsonl:13: invalid JSON"):
        build_training_data(recipe_at(tmp_path, body), tiny_tokenizer())
    streamed = build_training_data(recipe_at(tmp_path, body + "streaming: true\n"
                                             "shuffle_merged_datasets: false\n"), tiny_tokenizer())  # fmt: skip
    first = list(streamed.train.take(3))
    assert first[0]["text"].startswith("Document 0") and len(first) == 3


def test_pretraining_dataset_is_a_streamed_raw_text_corpus(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus.jsonl")
    body = (f"pretraining_dataset:\n  - path: {corpus}\n    type: pretrain\n    text_column: body\n"
            "    split: train[:6]\n    skip: 2\nmax_steps: 2\nsequence_len: 24\n"
            "shuffle_merged_datasets: false\n")  # fmt: skip
    recipe, tokenizer = recipe_at(tmp_path, body), tiny_tokenizer()
    assert recipe.datasets[0].type == "pretrain" and recipe.datasets[0].text_column == "body"
    streamed = build_training_data(recipe, tokenizer)
    assert streamed.streamed
    rows = [r["text"] for r in streamed.train]
    in_memory = build_training_data(recipe.model_copy(update={"streaming": False}), tokenizer)
    assert rows == [r["text"] for r in in_memory.train]
    assert rows[0].startswith("Document 2") and not any("Document 6" in r for r in rows)
    # Axolotl's pretrain windows overlap by min(256, window // 2) tokens (one per character
    # with the byte-level tiny tokenizer); completion windows do not overlap
    window = build.token_chunker(tokenizer, 24).window
    shared = max(k for k in range(len(rows[1])) if rows[0].endswith(rows[1][:k]))
    assert shared == window // 2 == 11
    completion = recipe.model_copy(update={"streaming": False, "datasets": [
        recipe.datasets[0].model_copy(update={"type": "completion"})]})  # fmt: skip
    pieces = [r["text"] for r in build_training_data(completion, tokenizer).train]
    assert "".join(p for p in pieces if p.startswith("Document 2") or "w2x" in p).startswith(
        "Document 2: w2x0"
    ) and not any(pieces[1].startswith(pieces[0][-k:]) for k in range(3, 12))


def test_streaming_refuses_what_needs_every_row_and_needs_max_steps(tmp_path: Path) -> None:
    body = ("datasets:\n  - path: x.jsonl\n    type: completion\nstreaming: true\n"
            "val_set_size: 0.1\ndataset_exact_deduplication: true\n")  # fmt: skip
    with pytest.raises(RecipeError) as error:
        recipe_at(tmp_path, body)
    lines = str(error.value).splitlines()
    assert len(lines) == 3, lines  # every problem at once, one line each
    assert "streaming: needs max_steps" in lines[0]
    assert "val_set_size: streamed rows cannot be held out" in lines[1]
    assert "dataset_exact_deduplication: is not available for streamed datasets" in lines[2]
    with pytest.raises(RecipeError, match="pretraining_dataset: needs max_steps"):
        recipe_at(tmp_path, "pretraining_dataset:\n  - path: c.jsonl\n")
    data = jsonl(tmp_path / "qa.jsonl", qa_rows(3))
    recipe = recipe_at(tmp_path, f"datasets:\n  - path: {data}\n    split: 'train[:10%]'\n"
                                 "streaming: true\nmax_steps: 2\n")  # fmt: skip
    with pytest.raises(DataError, match="streamed rows have no count"):
        list(stream_rows(recipe.datasets[0]))


def test_streamed_rows_train_with_sft_trainer(tmp_path: Path, tiny_model: Path) -> None:
    from ft_plugin import models, registry
    from ft_plugin.engine.sft_config import choose_precision
    from ft_plugin.engine.trainer import make_trainer

    corpus = _corpus(tmp_path / "corpus.jsonl")
    recipe = recipe_at(tmp_path, f"pretraining_dataset:\n  - path: {corpus}\n    text_column: body\n"
                                 "max_steps: 2\nsequence_len: 32\nreport_to: none\nbf16: false\n"
                                 "lora_r: 4\nmicro_batch_size: 2\n", tiny_model)  # fmt: skip
    base = models.resolve_base_model(recipe.base_model)
    tokenizer = models.load_tokenizer(recipe, base)
    data = build_training_data(recipe, tokenizer)
    precision = choose_precision(recipe, True)
    model = registry.load_method("lora").prepare(
        models.load_model(recipe, base, dtype=precision.load_dtype), recipe
    )
    trainer = make_trainer(recipe, model, tokenizer, data, tmp_path / "run", precision, 1)
    trainer.train()
    assert trainer.state.global_step == 2


# ── chat templates by Axolotl's names ────────────────────────────────────────────────────


def test_every_axolotl_template_name_is_shipped_and_renders() -> None:
    assert template_names() == sorted(CHAT_TEMPLATE_NAMES)
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<|endoftext|>"})
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    for name in CHAT_TEMPLATE_NAMES:
        text = tokenizer.apply_chat_template(
            conversation, tokenize=False, chat_template=resolve_chat_template(name, None)
        )
        assert "Hi" in text and "Hello!" in text, name
    notice = (Path(build.__file__).parent / "chat_templates" / "NOTICE").read_text()
    assert "Axolotl" in notice and "Apache License" in notice


@pytest.mark.parametrize(
    ("name", "markers"),
    [("chatml", ["<|im_start|>user\nHi<|im_end|>"]),
     ("llama3", ["<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"]),
     ("phi_3", ["<|user|>\nHi<|end|>"])],
)  # fmt: skip
def test_a_chat_row_renders_with_the_named_template(
    tmp_path: Path, name: str, markers: list[str]
) -> None:
    data = jsonl(tmp_path / "chat.jsonl", [SHAREGPT])
    recipe = recipe_at(tmp_path, f"chat_template: {name}\ndatasets:\n  - path: {data}\n"
                                 "    type: chat_template\n    field_messages: conversations\n"
                                 "    message_field_role: from\n    message_field_content: value\n")  # fmt: skip
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<|endoftext|>"})
    row = build_training_data(recipe, tokenizer).train[0]
    text = tokenizer.decode(row["input_ids"])
    for marker in markers:
        assert marker in text
    assert ("<|im_start|>" in text) == (name == "chatml")


def test_tokenizer_default_fallback_and_jinja_choices(tmp_path: Path) -> None:
    own, bare = tiny_tokenizer(), tiny_tokenizer()
    bare.chat_template = None
    assert resolve_chat_template("tokenizer_default", None, own) == own.chat_template
    assert (
        resolve_chat_template("tokenizer_default_fallback_llama3", None, own) == own.chat_template
    )
    assert "<|start_header_id|>" in resolve_chat_template(
        "tokenizer_default_fallback_llama3", None, bare
    )
    jinja = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    template_file = tmp_path / "mine.jinja"
    template_file.write_text(jinja, encoding="utf-8")
    assert resolve_chat_template("jinja", str(template_file), own) == jinja
    assert resolve_chat_template(None, jinja, own) == jinja  # chat_template empty: jinja
    with pytest.raises(DataError, match="neither a Jinja template nor a file"):
        resolve_chat_template("jinja", str(tmp_path / "missing.jinja"), own)


def test_unknown_template_names_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    body = ("chat_template: llama_3\ndatasets:\n  - path: c.jsonl\n    type: chat_template\n"
            "    chat_template: qwen25\n  - path: d.jsonl\n    type: chat_template\n"
            "    chat_template: jinja\n")  # fmt: skip
    with pytest.raises(RecipeError) as error:
        recipe_at(tmp_path, body)
    lines = str(error.value).splitlines()
    assert any("chat_template: unknown chat template 'llama_3' (did you mean 'llama3'?)" in line
               for line in lines)  # fmt: skip
    assert any("datasets.0.chat_template: unknown chat template 'qwen25' (did you mean 'qwen_25'?)"
               in line for line in lines)  # fmt: skip
    assert any("datasets.1: " in line and "needs chat_template_jinja" in line for line in lines)


# ── the chat_template dataset fields ─────────────────────────────────────────────────────


def _spans(tokenizer, ids: list[int], labels: list[int]) -> list[str]:  # noqa: ANN001
    """The decoded runs of tokens that carry a label."""
    spans, run = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != -100:
            run.append(token)
        elif run:
            spans.append(tokenizer.decode(run))
            run = []
    return [*spans, tokenizer.decode(run)] if run else spans


@pytest.mark.parametrize(
    ("keys", "trained"),
    [("", ["Hello!<|im_end|>", "4.<|im_end|>"]),
     ("roles_to_train: [human, gpt]\n",
      ["Hi<|im_end|>", "Hello!<|im_end|>", "2+2?<|im_end|>", "4.<|im_end|>"]),
     ("train_on_eos: none\n", ["Hello!", "4."]),
     ("train_on_eos: last\n", ["Hello!", "4.<|im_end|>"]),
     ("train_on_eos: all\n",
      ["<|im_end|>", "<|im_end|>", "Hello!<|im_end|>", "<|im_end|>", "4.<|im_end|>"]),
     ("roles_to_train: [human]\ndrop_system_message: true\n", ["Hi<|im_end|>", "2+2?<|im_end|>"])],
)  # fmt: skip
def test_sft_trainer_trains_exactly_the_trained_roles_of_a_sharegpt_row(
    tmp_path: Path, tiny_model: Path, keys: str, trained: list[str]
) -> None:
    from ft_plugin.engine import prepare_run

    data = jsonl(tmp_path / "chat.jsonl", [SHAREGPT])
    entry = "".join(f"    {line}\n" for line in keys.splitlines())
    path = tmp_path / "chat.yaml"
    path.write_text(
        f"base_model: {tiny_model}\ndatasets:\n  - path: {data}\n    type: chat_template\n"
        "    field_messages: conversations\n    message_property_mappings: {role: from, content: value}\n"
        f"{entry}sequence_len: 256\nmax_steps: 1\nreport_to: none\nbf16: false\nlora_r: 4\n",
        encoding="utf-8",
    )
    prepared = prepare_run(load_recipe(str(path)), str(tmp_path / "run"))
    row = prepared.trainer.train_dataset[0]
    tokenizer = prepared.trainer.processing_class
    assert _spans(tokenizer, row["input_ids"], row["labels"]) == trained
    ours = render_example(tokenizer, prepared.data.train[0], 256)  # preview shows the same
    assert ours.loss_mask == [int(label != -100) for label in row["labels"]]


def test_end_of_turn_tokens_of_the_template_carry_loss_as_train_on_eot_says(
    tmp_path: Path,
) -> None:
    data = jsonl(tmp_path / "chat.jsonl", [SHAREGPT])
    entry = (f"chat_template: llama3\ndatasets:\n  - path: {data}\n    type: chat_template\n"
             "    field_messages: conversations\n    message_field_role: from\n"
             "    message_field_content: value\n")  # fmt: skip
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<|endoftext|>",
                                  "additional_special_tokens": ["<|eot_id|>"]})  # fmt: skip

    def trained(body: str) -> tuple[list[str], list[str]]:
        data = build_training_data(recipe_at(tmp_path, body), tokenizer)
        row = data.train[0]
        labels = [
            t if m else -100 for t, m in zip(row["input_ids"], row["completion_mask"], strict=True)
        ]
        return _spans(tokenizer, row["input_ids"], labels), data.notes

    spans, notes = trained(entry)  # EOS (<|im_end|>) is not in llama3's text: no turn end
    assert spans == ["Hello!", "4."] and any(
        "does not occur in the chat template" in n for n in notes
    )
    spans, notes = trained(entry + "eot_tokens: ['<|eot_id|>']\n")
    assert spans == ["Hello!<|eot_id|>", "4.<|eot_id|>"] and notes == []
    spans, _ = trained(entry + "    train_on_eot: last\neot_tokens: ['<|eot_id|>']\n")
    assert spans == ["Hello!", "4.<|eot_id|>"]


def test_legacy_message_fields_and_role_names(tmp_path: Path) -> None:
    legacy = DatasetSection(path="x", type="chat_template", field_messages="conversations",
                            message_field_role="from", message_field_content="value")  # fmt: skip
    mapped = DatasetSection(path="x", type="chat_template", field_messages="conversations",
                            message_property_mappings={"role": "from", "content": "value"})  # fmt: skip
    assert chat_turns(SHAREGPT, legacy) == chat_turns(SHAREGPT, mapped)
    assert [t["role"] for t in chat_turns(SHAREGPT, legacy)] == [
        "system", "user", "assistant", "user", "assistant"]  # fmt: skip
    row = {
        "sys": "Answer in French.",
        "dialog": [{"who": "q", "text": "Hi"}, {"who": "a", "text": "Salut"}],
    }
    spec = DatasetSection(path="x", type="chat_template", field_messages="dialog", field_system="sys",
                          message_property_mappings={"role": "who", "content": "text"},
                          roles={"user": ["q"], "assistant": ["a"]})  # fmt: skip
    assert chat_turns(row, spec) == [{"role": "system", "content": "Answer in French."},
                                     {"role": "user", "content": "Hi"},
                                     {"role": "assistant", "content": "Salut"}]  # fmt: skip
    dropped = spec.model_copy(update={"drop_system_message": True})
    assert [t["role"] for t in chat_turns(row, dropped)] == ["user", "assistant"]
    narrated = {"dialog": [{"who": "narrator", "text": "Once"}, *row["dialog"]]}
    assert chat_turns(narrated, spec) == "unknown_role"  # a role roles: does not map
    tokenizer = tiny_tokenizer()
    example = convert_rows([row], spec).examples
    tokenized, _ = ChatRendering(tokenizer).tokenize(example, spec)
    assert "<|im_start|>system\nAnswer in French." in tokenizer.decode(tokenized[0]["input_ids"])


def test_chat_keys_elsewhere_and_conflicting_mappings_are_one_line_each(tmp_path: Path) -> None:
    body = ("datasets:\n  - path: a.jsonl\n    type: alpaca\n    roles_to_train: [user]\n"
            "  - path: c.jsonl\n    type: chat_template\n    message_field_role: from\n"
            "    message_property_mappings: {role: speaker}\n")  # fmt: skip
    with pytest.raises(RecipeError) as error:
        recipe_at(tmp_path, body)
    text = str(error.value)
    assert "datasets.0: roles_to_train: read by type: chat_template rows only" in text
    assert (
        "datasets.1: message_field_role: from conflicts with message_property_mappings.role" in text
    )


def test_other_chat_rows_of_a_chat_template_mix_are_tokenized_as_trl_would(tmp_path: Path) -> None:
    chat = jsonl(tmp_path / "chat.jsonl", [SHAREGPT])
    qa = jsonl(tmp_path / "qa.jsonl", qa_rows(3))
    recipe = recipe_at(tmp_path, f"datasets:\n  - path: {qa}\n  - path: {chat}\n"
                                 "    type: chat_template\n    field_messages: conversations\n"
                                 "    message_field_role: from\n    message_field_content: value\n")  # fmt: skip
    tokenizer = tiny_tokenizer()
    rows = list(build_training_data(recipe, tokenizer).train)
    assert all("input_ids" in r for r in rows) and len(rows) == 4
    for row in rows:
        if len(row["prompt"]) == 1:  # an alpaca row: the mask TRL gives prompt/completion rows
            plain = {"prompt": row["prompt"], "completion": row["completion"]}
            assert row["completion_mask"] == render_example(tokenizer, plain, 999).loss_mask


# ── what a recipe from the Hub may not set ───────────────────────────────────────────────


def test_a_remote_recipe_may_not_read_template_files_or_choose_the_prepared_folder() -> None:
    text = ("chat_template_jinja: /etc/passwd\ndataset_prepared_path: /tmp/anywhere\n"
            "datasets:\n  - path: org/data\n    type: chat_template\n"
            "    chat_template_jinja: '{{ messages }}'\n"
            "pretraining_dataset:\n  - path: ./secrets.jsonl\n")  # fmt: skip
    doc = parse_yaml(text, "hf://o/r/a.yaml", remote=True)
    flagged = {".".join(map(str, found.path)) for found, _, _ in remote_problems(doc)}
    assert flagged == {"chat_template_jinja", "dataset_prepared_path", "pretraining_dataset.0.path"}
