"""Every registered method answers for itself: quantized base, loading a trained run for
evaluation and for EWC's Fisher, its model-card usage, the recipes the Space starts from."""

from __future__ import annotations

import math
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from helpers import tiny_recipe

from ft_plugin import models, registry
from ft_plugin.errors import UserError
from ft_plugin.methods.base import FineTuningMethod
from ft_plugin.space.training.recipe import builtin_recipe, space_methods

BUILTINS = list(registry.BUILTIN_METHODS)
PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"


@pytest.fixture
def plugin_method(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test plugin's method (tests/plugin_pkg) registered through its entry point."""
    real = registry.entry_points
    entry = EntryPoint("example-lora", "ftp_example.method:ExampleLoraMethod", "ft_plugin.methods")
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: [entry] if group == "ft_plugin.methods" else real(group=group),
    )
    registry.clear_caches()
    yield "example-lora"
    registry.clear_caches()


def trained_run(tmp_path: Path, adapter: str) -> tuple[object, Path, int]:
    """(recipe, run directory, trainable parameters) of a freshly prepared run, saved as
    training saves it: the adapter, or the whole model for full-weight methods."""
    recipe = tiny_recipe(tmp_path, adapter).recipe
    method = registry.load_method(adapter)
    base = models.resolve_base_model(recipe.base_model)
    model = method.prepare(models.load_model(recipe, base, dtype=torch.float32), recipe)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    run_dir = tmp_path / f"run-{adapter}"
    model.save_pretrained(run_dir)
    return recipe, run_dir, trainable


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_method_answers_what_callers_ask(name: str) -> None:
    method = registry.load_method(name)
    assert isinstance(method, FineTuningMethod) and method.name == name
    assert method.takes_quantized_base is (name in ("lora", "qlora", "dora", "ia3"))
    assert method.uses_peft is (name not in ("full", "freeze"))
    usage = method.card_usage("me/run", "org/base")
    assert "```python" in usage and usage[-1] == ""


@pytest.mark.parametrize("name", BUILTINS)
def test_a_trained_run_loads_trainable_for_the_ewc_fisher(tmp_path: Path, name: str) -> None:
    """EWC applies to every method: the Fisher covers exactly what the run trained."""
    recipe, run_dir, trainable = trained_run(tmp_path, name)
    method = registry.load_method(name)
    base = models.resolve_base_model(recipe.base_model)
    model = method.load_trainable_run(run_dir, recipe, base)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bottleneck_loads_for_evaluation_by_teaching_peft_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft import PeftModel
    from peft.mapping import (
        PEFT_TYPE_TO_CONFIG_MAPPING,
        PEFT_TYPE_TO_PREFIX_MAPPING,
        PEFT_TYPE_TO_TUNER_MAPPING,
    )
    from peft.utils.peft_types import PeftType

    recipe, run_dir, _ = trained_run(tmp_path, "bottleneck")
    base = models.resolve_base_model(recipe.base_model)
    for mapping in (PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING,
                    PEFT_TYPE_TO_TUNER_MAPPING):  # fmt: skip
        monkeypatch.delitem(mapping, PeftType.BOTTLENECK)  # PEFT forgot the type
    with pytest.raises(Exception):  # noqa: B017  (PEFT's own error: an unknown type)
        PeftModel.from_pretrained(
            models.load_model(recipe, base, dtype=torch.float32), str(run_dir)
        )
    method = registry.load_method("bottleneck")
    loaded = method.load_adapter(models.load_model(recipe, base, dtype=torch.float32), run_dir)
    assert isinstance(loaded, PeftModel)
    assert loaded.peft_config["default"].peft_type == PeftType.BOTTLENECK
    # a second run joins the first under its own name (one Space serving two runs)
    method.load_adapter(loaded, run_dir, adapter_name="second")
    assert set(loaded.peft_config) == {"default", "second"}


def test_a_full_weights_method_has_no_adapter_to_load(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="trains full weights"):
        registry.load_method("full").load_adapter(torch.nn.Linear(1, 1), tmp_path)


@pytest.mark.parametrize("name", BUILTINS)
def test_card_usage_is_the_methods_own(name: str) -> None:
    usage = registry.load_method(name).card_usage("me/run", "org/base")
    text = "\n".join(usage)
    if name in ("full", "freeze"):
        assert usage[:2] == [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
        ]
        assert 'AutoModelForCausalLM.from_pretrained("me/run")' in text and "peft" not in text
    elif name == "bottleneck":
        assert usage[0].startswith("Bottleneck adapters are not part of PEFT")
        assert "import ft_plugin.methods.bottleneck" in text
        assert 'AutoPeftModelForCausalLM.from_pretrained("me/run")' in text
        assert "load_adapter" not in text  # transformers cannot load an unknown PEFT type
    else:
        assert usage[:2] == ["```python", "from peft import AutoPeftModelForCausalLM"]
        assert 'AutoModelForCausalLM.from_pretrained("org/base")' in text
        assert 'model.load_adapter("me/run")' in text


def test_the_space_lists_every_registered_method(plugin_method: str) -> None:
    methods = space_methods()
    assert set(BUILTINS) <= set(methods) and plugin_method in methods
    assert registry.load_method(plugin_method).takes_quantized_base  # a LoRA under its name
    # a method with builtin recipes starts from them; others from the domain's LoRA recipe
    assert builtin_recipe("medical", "bottleneck")[0] == "medical-adapter"
    assert builtin_recipe("legal", "qlora")[0] == "legal-qlora"
    for name in ("ia3", "llama-adapter", plugin_method):
        recipe, overrides = builtin_recipe("medical", name)
        assert recipe == "medical-lora" and dict(overrides)["adapter"] == name
    with pytest.raises(UserError, match="method: 'magic' is not one of"):
        builtin_recipe("medical", "magic")


@pytest.mark.parametrize("bits", ["load_in_4bit", "load_in_8bit"])
def test_ia3_trains_over_the_quantized_base_the_recipe_asks_for(tmp_path: Path, bits: str) -> None:
    # The schema has always accepted ia3 with load_in_4bit / 8bit; the method loaded the
    # base unquantized until it answered for itself.
    import bitsandbytes as bnb

    from ft_plugin import engine

    prepared = engine.prepare_run(
        tiny_recipe(tmp_path, "ia3", **{bits: "true"}), str(tmp_path / "r")
    )
    layer = bnb.nn.Linear4bit if bits == "load_in_4bit" else bnb.nn.Linear8bitLt
    assert any(isinstance(m, layer) for m in prepared.trainer.model.modules())
    result = engine.run(prepared)
    assert result.metrics["steps"] == 3 and math.isfinite(result.metrics["train_loss"])


@pytest.mark.parametrize(
    ("extra", "adapter", "key", "says"),
    [
        ("load_in_4bit: true", "freeze", "load_in_4bit", "(lora, qlora, dora, ia3)"),
        ("load_in_8bit: true", "qlora", "load_in_8bit", "qlora is 4-bit"),
        ("reinit_weights: true", "ia3", "reinit_weights", "adapter ia3 saves only its own"),
        ("lora_target_parameters: [mlp.experts]\nlora_dropout: 0", "dora", "adapter", "DoRA"),
    ],
)
def test_a_method_refuses_the_keys_it_cannot_train_with(
    tmp_path: Path, extra: str, adapter: str, key: str, says: str
) -> None:
    from ft_plugin.config import load_recipe
    from ft_plugin.errors import RecipeError

    tiny_recipe(tmp_path, adapter)
    path = tmp_path / f"{adapter}.yaml"
    path.write_text(
        path.read_text().replace(f"adapter: {adapter}\n", f"adapter: {adapter}\n{extra}\n")
    )
    with pytest.raises(RecipeError) as raised:
        load_recipe(str(path))
    lines = str(raised.value).splitlines()
    assert len(lines) == 1 and f": {key}: " in lines[0] and says in lines[0]


def test_qlora_implies_a_4bit_base(tmp_path: Path) -> None:
    assert tiny_recipe(tmp_path, "qlora").recipe.load_in_4bit is True
