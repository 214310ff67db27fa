"""Recipes: loading, extends, --set, and one located line for every kind of error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import cli

from ft_plugin import registry
from ft_plugin.config import load_recipe, parse_set_options
from ft_plugin.errors import RecipeError

REQUIRED = [
    "medical-lora", "medical-qlora", "medical-adapter", "medical-full", "medical-freeze",
    "legal-lora", "legal-qlora", "legal-adapter",
    "finance-lora", "finance-qlora", "finance-adapter", "finance-sentiment-lora",
]  # fmt: skip


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(reference: str | Path, set_options: list[str] | None = None) -> str:
    """The one-line error of loading ``reference`` with ``--set`` options, as the CLI does."""
    with pytest.raises(RecipeError) as info:
        load_recipe(str(reference), parse_set_options(set_options or []))
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", REQUIRED)
def test_every_builtin_recipe_validates_on_the_embedded_model(name: str) -> None:
    loaded = load_recipe(name)
    assert loaded.name == name
    assert loaded.recipe.base_model == "embedded:smollm2-135m-instruct"
    assert loaded.recipe.sequence_len <= 512
    assert loaded.recipe.description and loaded.recipe.domain
    header = registry.recipes()[name].path.read_text().splitlines()
    assert header[0].startswith(f"# {name}:")
    assert any("7B" in line for line in header[:4]), "header must state the memory on a 7B model"


def test_builtin_recipes_are_composed_not_copied() -> None:
    for name in REQUIRED:
        data = yaml.safe_load(registry.recipes()[name].path.read_text())
        assert "extends" in data, name
        assert "lora_r" not in data and "base_model" not in data, name


def test_methods_resolve_from_the_recipes() -> None:
    assert load_recipe("medical-qlora").recipe.load_in_4bit is True
    assert load_recipe("medical-adapter").recipe.adapter == "bottleneck"
    assert load_recipe("medical-freeze").recipe.freeze.fraction == 0.25


def test_extends_merges_deeply_child_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        "parent.yaml",
        "lora_r: 4\nhub:\n  private: true\n  license: mit\ndatasets:\n  - path: a.jsonl\n",
    )
    child = write(
        tmp_path, "child.yaml", "extends: parent.yaml\nlora_r: 32\nhub:\n  private: false\n"
    )
    recipe = load_recipe(str(child)).recipe
    assert recipe.lora_r == 32
    assert recipe.hub.private is False and recipe.hub.license == "mit"
    assert recipe.datasets[0].path == "a.jsonl"


def test_extends_a_builtin_by_name(tmp_path: Path) -> None:
    child = write(tmp_path, "mine.yaml", "extends: medical-lora\nlora_r: 4\n")
    loaded = load_recipe(str(child))
    assert loaded.recipe.lora_r == 4 and loaded.recipe.lora_target_linear is True
    assert loaded.name == "mine"


def test_set_overrides_nested_and_list_items_with_yaml_scalars() -> None:
    options = ["hub.private=false", "lora_r=4", "datasets.0.max_rows=10",
               "lora_target_modules=[q_proj, v_proj]", "hub_model_id=", "description=[draft"]  # fmt: skip
    overrides = parse_set_options(options)
    assert overrides == {
        "hub.private": False,
        "lora_r": 4,
        "datasets.0.max_rows": 10,
        "lora_target_modules": ["q_proj", "v_proj"],
        "hub_model_id": None,
        "description": "[draft",
    }  # not YAML: the text as it is
    recipe = load_recipe("medical-lora", overrides).recipe
    assert recipe.hub.private is False and recipe.lora_r == 4
    assert recipe.datasets[0].max_rows == 10
    assert recipe.lora_target_modules == ["q_proj", "v_proj"]


def test_typed_overrides_are_set_as_they_are_and_errors_name_their_origin() -> None:
    recipe = load_recipe("medical-lora", {"hub.private": False, "datasets.0.max_rows": 10,
                                          "description": "false"}).recipe  # fmt: skip
    assert recipe.hub.private is False and recipe.datasets[0].max_rows == 10
    assert recipe.description == "false"  # a string stays a string: never parsed as YAML
    with pytest.raises(RecipeError, match="^the Space's request: lora_r: input should be"):
        load_recipe("medical-lora", {"lora_r": 0}, overrides_origin="the Space's request")
    with pytest.raises(RecipeError, match=r"^--set: lora_r: input should be"):
        load_recipe("medical-lora", parse_set_options(["lora_r=0"]))


def test_a_key_set_twice_keeps_its_last_value_in_the_order_last_given() -> None:
    assert list(parse_set_options(["lora_r=4", "lora_alpha=8", "lora_r=2"]).items()) == [
        ("lora_alpha", 8), ("lora_r", 2),
    ]  # fmt: skip


def test_resolved_recipe_round_trips_through_yaml(tmp_path: Path) -> None:
    loaded = load_recipe("medical-qlora", {"lora_r": 4})
    out = write(tmp_path, "resolved.yaml", loaded.to_yaml())
    again = load_recipe(str(out))
    assert again.name == loaded.name == "medical-qlora"
    assert again.recipe.model_dump(exclude={"name"}) == loaded.recipe.model_dump(exclude={"name"})


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "extends: medical-lora\nlora_rr: 8\n")
    assert error_of(path) == f"{path}:2: lora_rr: unknown key; did you mean 'lora_r'?"


def test_unknown_nested_key_names_the_full_path(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "datasets:\n  - path: x.jsonl\n    field_instructon: q\n")
    assert error_of(path) == (
        f"{path}:3: datasets.0.field_instructon: unknown key; did you mean 'field_instruction'?"
    )


def test_wrong_type_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "extends: medical-lora\nlearning_rate: fast\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: learning_rate: ")
    assert "'fast'" in message


def test_out_of_range_value_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "extends: medical-lora\n\nmicro_batch_size: -1\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3: micro_batch_size: ")
    assert "greater than or equal to 1" in message


def test_unknown_adapter_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "adapter: lorra\ndatasets:\n  - path: x.jsonl\n")
    message = error_of(path)
    assert message.startswith(f"{path}:1: adapter: unknown method 'lorra' (did you mean 'lora'?)")
    for method in ("full", "freeze", "lora", "qlora", "dora", "ia3", "llama-adapter", "bottleneck"):
        assert method in message


def test_unknown_dataset_type_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "datasets:\n  - path: x.jsonl\n    type: alpacca\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3: datasets.0.type: unknown dataset type 'alpacca'")
    assert "did you mean 'alpaca'" in message and "chat_template" in message


def test_missing_datasets(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "lora_r: 8\n")
    assert error_of(path) == f"{path}:1: datasets: required key is missing"


def test_qlora_with_8bit_is_contradictory(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "adapter: qlora\nload_in_8bit: true\ndatasets:\n  - path: x\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: load_in_8bit: ") and "qlora" in message


def test_4bit_without_a_peft_adapter_is_contradictory(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "adapter: full\nload_in_4bit: true\ndatasets:\n  - path: x\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: load_in_4bit: ") and "adapter: full" in message


def test_extends_cycle_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "extends: b.yaml\n")
    b = write(tmp_path, "b.yaml", "lora_r: 4\nextends: a.yaml\n")
    message = error_of(a)
    assert message.startswith(f"{b}:2: extends: cycle")
    assert "a.yaml -> " in message and message.endswith("a.yaml")


def test_missing_parent_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "lora_r: 4\nextends: nowhere.yaml\n")
    assert error_of(path) == f"{path}:2: extends: parent recipe 'nowhere.yaml' not found"


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "lora_r: 8\ndatasets: [a\nx: 1\n")
    message = error_of(path)
    assert message.startswith(f"{path}:3: YAML syntax error")


def test_error_in_a_parent_names_the_parent_file(tmp_path: Path) -> None:
    parent = write(tmp_path, "p.yaml", "datasets:\n  - path: x\nlora_alpha: 0\n")
    child = write(tmp_path, "c.yaml", "extends: p.yaml\nlora_r: 4\n")
    assert error_of(child).startswith(f"{parent}:3: lora_alpha: ")


def test_bad_override_names_set(tmp_path: Path) -> None:
    assert (
        error_of("medical-lora", ["lora_rr=3"])
        == "--set: lora_rr: unknown key; did you mean 'lora_r'?"
    )
    assert error_of("medical-lora", ["lora_r"]).startswith("--set: 'lora_r': expected KEY=VALUE")


def test_unknown_recipe_name_suggests(tmp_path: Path) -> None:
    assert "did you mean 'medical-lora'" in error_of("medical-lorra")


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "lora_r: !!python/object/apply:os.system ['true']\n")
    assert (
        error_of(path)
        == f"{path}:1: YAML tag tag:yaml.org,2002:python/object/apply:os.system is not allowed"
    )
    scalar = write(tmp_path, "s.yaml", "lora_r: !!python/name:os.system\n")
    assert error_of(scalar).startswith(
        f"{scalar}:1: YAML value error: could not determine a constructor"
    )


def test_cli_validate_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "extends: medical-lora\nlora_rr: 8\n")
    result = cli("recipes", "validate", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path}:2: lora_rr: unknown key; did you mean 'lora_r'?"
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_lists_shows_and_prints_schema() -> None:
    listing = cli("recipes", "list")
    assert listing.returncode == 0
    for name in REQUIRED:
        assert name in listing.stdout
    assert "INVALID" not in listing.stdout
    shown = cli("recipes", "show", "medical-qlora", "--set", "lora_r=4")
    data = yaml.safe_load(shown.stdout)
    assert data["lora_r"] == 4 and data["adapter"] == "qlora" and data["name"] == "medical-qlora"
    schema = cli("recipes", "schema")
    import json

    properties = json.loads(schema.stdout)["properties"]
    assert properties["lora_r"]["description"] == "LoRA rank."
    assert all("description" in spec for spec in properties.values())


@pytest.mark.slow
def test_an_installed_plugin_adds_a_recipe_and_a_method(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(Path(__file__).parent / "plugin_pkg")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    import os

    env = {**os.environ, "PYTHONPATH": str(target)}
    listing = subprocess.run(
        [sys.executable, "-m", "ft_plugin", "recipes", "list"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith("plugin-medical"))
    assert "example-lora" in row and "medical" in row
    shown = subprocess.run(
        [sys.executable, "-m", "ft_plugin", "recipes", "show", "plugin-medical"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert yaml.safe_load(shown.stdout)["adapter"] == "example-lora"


def test_shipped_accelerate_configs_parse_with_accelerate() -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    configs = sorted((Path(registry.BUILTIN_RECIPES_DIR) / "accelerate").glob("*.yaml"))
    assert {p.stem for p in configs} == {"ddp", "fsdp", "deepspeed_zero3"}
    kinds = {ClusterConfig.from_yaml_file(str(p)).distributed_type.value for p in configs}
    assert kinds == {"MULTI_GPU", "FSDP", "DEEPSPEED"}
