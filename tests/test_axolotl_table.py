"""The Axolotl key table (``keys.yaml``): every key of the pinned Axolotl schema is a recipe
key of ours or sits in the table exactly once, with one line a user can act on, and a run
that sets a table key says so at the key's file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import cli

from ft_plugin.config import load_recipe
from ft_plugin.config.axolotl import TABLE_FILE, key_table, pinned_keys, schema_keys
from ft_plugin.config.schema import Recipe
from ft_plugin.config.schema.datasets import DatasetSection
from ft_plugin.errors import RecipeError

SECTIONS = ("no_effect", "refused")
# A refused key's reason ends with what to do instead.
ACTION = re.compile(r"\b(instead|write|use|remove|set|run|drop)\b")
DRAFT_FILLER = "not supported by ft-plugin yet"
ENTRY_LINE = re.compile(r'^  (?P<key>[a-z0-9_.]+): "(?P<reason>(?:[^"\\]|\\.)*)"$')


def is_ours(key: str) -> bool:
    """A key our schema reads (a field or another spelling of one): `Recipe`, or
    `DatasetSection` for ``datasets.KEY``."""
    if key.startswith("datasets."):
        return key.removeprefix("datasets.") in schema_keys(DatasetSection)
    return key in schema_keys(Recipe)


def table_entries() -> list[tuple[str, str, str]]:
    """``(section, key, reason)`` of every entry as written, duplicates included (a YAML
    load keeps only the last of two equal keys)."""
    root = yaml.compose(TABLE_FILE.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return [
        (section.value, key.value, reason.value)
        for section, entries in root.value
        if section.value in SECTIONS  # `neutral:` holds values, not reasons
        for key, reason in entries.value
    ]


def test_every_pinned_key_is_ours_or_in_the_table_exactly_once() -> None:
    written = [key for _, key, _ in table_entries()]
    missing = sorted(key for key in pinned_keys() if not is_ours(key) and key not in written)
    twice = sorted({key for key in written if written.count(key) > 1})
    assert not missing, f"keys of the pinned schema in neither our schema nor keys.yaml: {missing}"
    assert not twice, f"keys written more than once in keys.yaml: {twice}"


def test_no_table_key_is_a_field_of_ours() -> None:
    # A key both honoured and in the table is honoured (the schema wins); its entry is stale.
    stale = sorted(key for _, key, _ in table_entries() if is_ours(key))
    assert not stale, f"honoured keys still in keys.yaml (remove their entries): {stale}"


def test_every_table_key_is_a_key_of_the_pinned_schema() -> None:
    unknown = sorted(key for _, key, _ in table_entries() if key not in pinned_keys())
    assert not unknown, f"keys.yaml keys that Axolotl's pinned schema lacks: {unknown}"


def test_every_reason_is_one_line_a_user_can_act_on() -> None:
    entries = table_entries()
    assert {section for section, _, _ in entries} == set(SECTIONS)
    for section, key, reason in entries:
        assert "\n" not in reason and len(reason) >= 25, (key, reason)
        assert DRAFT_FILLER not in reason, key
        if section == "refused":
            assert ACTION.search(reason), f"{key}: say what to write instead: {reason}"
    table = key_table()  # what the loader reads is what is written
    assert {**table.no_effect, **table.refused} == {key: reason for _, key, reason in entries}


def test_the_file_is_one_sorted_line_per_key() -> None:
    lines = TABLE_FILE.read_text(encoding="utf-8").split("\nneutral:")[0].splitlines()
    body = [line for line in lines if line and not line.startswith("#")]
    sections = [index for index, line in enumerate(body) if not line.startswith(" ")]
    assert [body[i] for i in sections] == [f"{name}:" for name in SECTIONS]
    for start, end in zip(sections, [*sections[1:], len(body)], strict=True):
        keys = []
        for line in body[start + 1 : end]:
            match = ENTRY_LINE.match(line)
            assert match, f'not KEY: "REASON" on one line: {line}'
            keys.append(match["key"])
        assert keys == sorted(keys), f"{body[start]} keys are not sorted"


DATA_ROWS = '{"instruction": "What is a fever?", "output": "A raised body temperature."}\n'


def axolotl_config(tmp_path: Path, *extra: str) -> Path:
    """An Axolotl-style config on the embedded model and a local alpaca file, plus lines."""
    data = tmp_path / "rows.jsonl"
    data.write_text(DATA_ROWS * 4, encoding="utf-8")
    path = tmp_path / "axolotl.yml"
    path.write_text(
        "\n".join(
            [
                "base_model: embedded:smollm2-135m-instruct",
                "lora_mlp_kernel: true",
                "datasets:",
                f"  - path: {data}",
                "    type: alpaca",
                *extra,
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def test_a_no_effect_key_loads_with_a_note_at_its_file_and_line(tmp_path: Path) -> None:
    path = axolotl_config(tmp_path)
    loaded = load_recipe(str(path))
    reason = key_table().no_effect["lora_mlp_kernel"]
    assert loaded.notes == [f"{path}:2: lora_mlp_kernel: no effect here: {reason}"]


def test_refused_keys_are_errors_at_their_file_and_line(tmp_path: Path) -> None:
    path = axolotl_config(tmp_path, "    shards: 4", "loraplus_lr_ratio: 16")
    with pytest.raises(RecipeError) as info:
        load_recipe(str(path))
    refused = key_table().refused
    assert str(info.value).splitlines() == [
        f"{path}:6: datasets.0.shards: {refused['datasets.shards']}",
        f"{path}:7: loraplus_lr_ratio: {refused['loraplus_lr_ratio']}",
    ]


def test_a_refused_key_left_empty_asks_for_nothing(tmp_path: Path) -> None:
    path = axolotl_config(tmp_path, "loraplus_lr_ratio:", "warmup_ratio: null")
    assert load_recipe(str(path)).recipe.base_model == "embedded:smollm2-135m-instruct"


def test_neutral_values_are_of_table_keys_and_say_nothing(tmp_path: Path) -> None:
    table = key_table()
    assert set(table.neutral) <= set(table.no_effect) | set(table.refused)
    recipe = tmp_path / "r.yaml"
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    recipe.write_text(f"datasets: [{{path: {rows}, type: alpaca}}]\ncontext_parallel_size: 1\n")
    assert load_recipe(str(recipe)).notes == []  # a single device asks for nothing


def test_the_readme_shows_the_tables_counts() -> None:
    honoured = [key for key in pinned_keys() if is_ours(key)]
    table = key_table()
    assert len(honoured) + len(table.no_effect) + len(table.refused) == len(pinned_keys())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"every one of the {len(pinned_keys())} keys of its config schema" in readme
    for group, count in (("honoured", len(honoured)), ("no effect here", len(table.no_effect)),
                         ("refused", len(table.refused))):  # fmt: skip
        assert f"| {group} | {count} |" in readme, group


@pytest.mark.slow
def test_a_recipe_with_three_mistakes_reports_all_three_in_one_run(tmp_path: Path) -> None:
    path = axolotl_config(tmp_path, "lora_rr: 8", "learning_rate: fast", "loraplus_lr_ratio: 16")
    expected = [f"error: {path}:6: lora_rr: unknown key; did you mean 'lora_r'?",
                f"error: {path}:7: learning_rate: input should be a valid number, unable to parse "
                "string as a number (got 'fast')",
                f"error: {path}:8: loraplus_lr_ratio: {key_table().refused['loraplus_lr_ratio']}"]  # fmt: skip
    validated = cli("recipes", "validate", str(path))
    assert (validated.returncode, validated.stderr.splitlines()) == (2, expected)
    out = tmp_path / "run"
    trained = cli("train", str(path), "--output-dir", str(out))
    assert (trained.returncode, trained.stderr.splitlines()[-3:]) == (2, expected)
    assert not out.exists()  # nothing half-written
