"""The pre-training estimate: exact parameter counts on a weightless model, a memory rule that errs high."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import require, tiny_recipe

from ft_plugin import models, registry
from ft_plugin.config import Recipe, load_recipe
from ft_plugin.engine import sft_config
from ft_plugin.engine.run import count_parameters
from ft_plugin.errors import UserError
from ft_plugin.methods import estimate
from ft_plugin.methods.estimate import MIB, estimate_training
from ft_plugin.speed.lora_layers import speed_up_lora_layers
from ft_plugin.utils import precision

METHODS = ["lora", "dora", "ia3", "bottleneck", "freeze", "full", "llama-adapter", "qlora"]


def prepared_for_real(recipe: Recipe) -> torch.nn.Module:
    """The model as training prepares it, with its weights (fp32: the tiny recipes say bf16: false)."""
    method = registry.load_method(recipe.adapter)
    base = models.resolve_base_model(recipe.base_model)
    quantization = method.quantization_config(recipe, torch.float32)
    model = models.load_model(recipe, base, dtype=torch.float32, quantization_config=quantization)
    model = method.prepare(model, recipe)
    speed_up_lora_layers(model, autocast_half=False)
    return model


def frozen_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)


@pytest.mark.parametrize("adapter", METHODS)
def test_counts_and_weights_equal_the_prepared_model(tmp_path: Path, adapter: str) -> None:
    if adapter == "qlora":  # a real 4-bit model needs bitsandbytes (the estimate does not)
        require("bitsandbytes", "the qlora extra (make setup installs .[all])")
    recipe = tiny_recipe(tmp_path, adapter).recipe
    estimated = estimate_training(recipe)
    real = prepared_for_real(recipe)
    assert (estimated.trainable, estimated.total) == count_parameters(real)
    assert 0 < estimated.share <= 1
    # bf16: false, so no autocast copies: the weights part is the real frozen storage
    # (for qlora the packed 4-bit tensors and the fp32 rest).
    assert estimated.weights_mb * MIB == frozen_bytes(real)


def test_qlora_is_estimated_without_bitsandbytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` now fails
    qlora = estimate_training(tiny_recipe(tmp_path, "qlora").recipe)
    lora = estimate_training(tiny_recipe(tmp_path, "lora").recipe)
    assert (qlora.trainable, qlora.total) == (lora.trainable, lora.total)
    assert qlora.weights_mb < lora.weights_mb
    assert any("4-bit" in note for note in qlora.notes)


def test_lora_model_dir_counts_the_adapter_it_starts_from(tmp_path: Path) -> None:
    earlier = tiny_recipe(tmp_path, "lora", lora_r=8).recipe
    prepared_for_real(earlier).save_pretrained(tmp_path / "earlier")
    recipe = tiny_recipe(tmp_path, "lora", lora_model_dir=tmp_path / "earlier").recipe
    method = registry.load_method("lora")
    base = models.load_model(
        recipe, models.resolve_base_model(recipe.base_model), dtype=torch.float32
    )
    real = method.start_from(base, recipe, tmp_path / "earlier")
    estimated = estimate_training(recipe)
    assert (estimated.trainable, estimated.total) == count_parameters(real)
    assert estimated.trainable > estimate_training(tiny_recipe(tmp_path, "lora").recipe).trainable


def test_only_config_json_is_read(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora")
    skeleton = tmp_path / "config-only"
    skeleton.mkdir()
    shutil.copy(tmp_path / "tiny-model" / "config.json", skeleton)
    only_config = load_recipe(loaded.source, {"base_model": str(skeleton)}).recipe
    assert estimate_training(only_config) == estimate_training(loaded.recipe)


def test_embedded_medical_lora_is_exact_and_fast() -> None:
    import peft  # noqa: F401  imports are the process's (peft alone takes seconds), not the estimate's
    from transformers import AutoModelForCausalLM  # noqa: F401

    recipe = load_recipe("medical-lora").recipe
    started = time.perf_counter()
    estimated = estimate_training(recipe)
    seconds = time.perf_counter() - started
    real = registry.load_method("lora").prepare(
        models.load_model(
            recipe, models.resolve_base_model(recipe.base_model), dtype=torch.float32
        ),
        recipe,
    )
    assert (estimated.trainable, estimated.total) == count_parameters(real)
    assert seconds < 5, f"the estimate took {seconds:.1f} s"


def test_memory_grows_with_batch_and_length(tmp_path: Path) -> None:
    base = estimate_training(tiny_recipe(tmp_path, "lora").recipe)
    wider = estimate_training(tiny_recipe(tmp_path, "lora", micro_batch_size=4).recipe)
    longer = estimate_training(tiny_recipe(tmp_path, "lora", sequence_len=192).recipe)
    for bigger in (wider, longer):
        assert bigger.activations_mb > base.activations_mb
        assert bigger.total_mb > base.total_mb
        assert (bigger.weights_mb, bigger.optimizer_mb) == (base.weights_mb, base.optimizer_mb)
    # micro_batch 2 -> 4 and sequence_len 96 -> 192 both double the tokens of a micro-batch
    assert wider.activations_mb == pytest.approx(2 * base.activations_mb)
    assert longer.activations_mb == pytest.approx(2 * base.activations_mb)
    assert base.optimizer_mb * MIB == 16 * base.trainable
    assert base.total_mb == base.weights_mb + base.optimizer_mb + base.activations_mb


def test_gradient_checkpointing_lowers_activations(tmp_path: Path) -> None:
    plain = estimate_training(tiny_recipe(tmp_path, "lora", gradient_checkpointing="false").recipe)
    checkpointed = estimate_training(
        tiny_recipe(tmp_path, "lora", gradient_checkpointing="true").recipe
    )
    assert not plain.gradient_checkpointing and checkpointed.gradient_checkpointing
    assert checkpointed.activations_mb < plain.activations_mb
    auto = estimate_training(tiny_recipe(tmp_path, "lora").recipe)
    assert auto.gradient_checkpointing is sft_config.choose_gradient_checkpointing(
        tiny_recipe(tmp_path, "lora").recipe, auto.total
    )


def saved_for_backward(model: torch.nn.Module, recipe: Recipe) -> int:
    """Bytes autograd keeps for the backward of one micro-batch (with the loss), weights aside."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    model.train()
    ids = torch.randint(0, model.config.vocab_size, (recipe.micro_batch_size, recipe.sequence_len))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(input_ids=ids, labels=ids)
    return sum(kept.values()) + out.logits.untyped_storage().nbytes()


@pytest.mark.parametrize("adapter", ["lora", "dora", "freeze", "full", "llama-adapter"])
def test_activation_rule_errs_high_but_not_wildly(tmp_path: Path, adapter: str) -> None:
    recipe = tiny_recipe(tmp_path, adapter).recipe
    measured = saved_for_backward(prepared_for_real(recipe), recipe)
    estimated = estimate_training(recipe).activations_mb * MIB
    assert measured <= estimated <= 3 * measured


def test_missing_base_model_is_the_user_error_training_gives(tmp_path: Path) -> None:
    source = tiny_recipe(tmp_path, "lora").source
    for missing in (str(tmp_path / "no-such-model"), "nobody-here/no-such-model"):
        with pytest.raises(UserError) as from_training:
            models.resolve_base_model(missing)
        with pytest.raises(UserError) as from_estimate:
            estimate_training(load_recipe(source, {"base_model": missing}).recipe)
        assert str(from_estimate.value) == str(from_training.value)
        assert missing in str(from_estimate.value)


@pytest.mark.parametrize("bf16, fp16", [("true", False), ("false", False), ("auto", False),
                                        ("false", True)])  # fmt: skip
def test_precision_rule_is_the_engines(tmp_path: Path, bf16: str, fp16: bool) -> None:
    # One rule below both layers (ft_plugin.utils.precision): the engine re-exports it, the
    # estimate calls it.
    assert sft_config.choose_precision is precision.choose_precision
    assert estimate.choose_precision is precision.choose_precision
    recipe = tiny_recipe(tmp_path, "lora", bf16=bf16, fp16=str(fp16).lower()).recipe
    engine = sft_config.choose_precision(recipe, uses_peft=True)
    assert estimate_training(recipe).precision == engine.label
    assert estimate.choose_gradient_checkpointing is sft_config.choose_gradient_checkpointing


def test_summary_reads_like_the_training_log(tmp_path: Path) -> None:
    estimated = estimate_training(tiny_recipe(tmp_path, "lora").recipe)
    line = estimated.summary()
    assert line.startswith(
        f"{estimated.trainable:,} trainable of {estimated.total:,} parameters "
        f"({100 * estimated.trainable / estimated.total:.3f}%); memory ≈ "
    )
    assert f"optimizer {estimated.optimizer_mb:,.0f}" in line
