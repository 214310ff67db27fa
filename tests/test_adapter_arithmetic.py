"""Merging per-task LoRA adapters with PEFT's add_weighted_adapter (ft_plugin.continual.arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch
from peft import IA3Config, LoraConfig, get_peft_model
from tiny import tiny_llama

from ft_plugin.continual.arithmetic import AdapterMergeError, merge_adapters

TARGETS = ["q_proj", "v_proj"]
IDS = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 8]])


def lora(r: int = 4, alpha: int = 8, **kwargs) -> LoraConfig:
    return LoraConfig(
        r=r, lora_alpha=alpha, target_modules=TARGETS, init_lora_weights=False, **kwargs
    )


def two_adapters(r_b: int = 4, **kwargs):
    """A tiny Llama with adapters 'law' and 'med' (both non-zero: init_lora_weights=False)."""
    torch.manual_seed(1)
    model = get_peft_model(tiny_llama(), lora(**kwargs), adapter_name="law")
    torch.manual_seed(2)
    model.add_adapter("med", lora(r=r_b, **kwargs))
    model.eval()
    return model


def lora_layers(model):
    return [
        module
        for name, module in model.named_modules()
        if name.endswith(("q_proj", "v_proj")) and hasattr(module, "lora_A")
    ]


def logits(model, adapter: str) -> torch.Tensor:
    model.set_adapter(adapter)
    with torch.no_grad():
        return model(IDS).logits


def a_and_b(layer, adapter: str) -> tuple[torch.Tensor, torch.Tensor]:
    return layer.lora_A[adapter].weight.detach(), layer.lora_B[adapter].weight.detach()


def test_linear_one_hot_weights_reproduce_the_first_adapter():
    model = two_adapters()
    expected = logits(model, "law")
    assert merge_adapters(model, ["law", "med"], [1.0, 0.0], name="only_law") == "only_law"
    assert model.active_adapters == ["only_law"]
    with torch.no_grad():
        merged = model(IDS).logits
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected, logits(model, "med"))


def test_linear_combines_A_and_B_with_sqrt_weights_including_cross_terms():
    """PEFT's 'linear': A = Σ sign·sqrt|w s| A_i, B = Σ sqrt|w s| B_i; new scaling 1."""
    weights = [0.5, -0.25]
    model = two_adapters()
    merge_adapters(model, ["law", "med"], weights, name="lin")
    assert model.peft_config["lin"].r == 4
    for layer in lora_layers(model):
        (a1, b1), (a2, b2) = a_and_b(layer, "law"), a_and_b(layer, "med")
        s1, s2 = layer.scaling["law"], layer.scaling["med"]
        assert s1 == s2 == 2.0 and layer.scaling["lin"] == 1.0
        c1, c2 = math.sqrt(abs(weights[0] * s1)), math.sqrt(abs(weights[1] * s2))
        expected_a = c1 * a1 - c2 * a2  # the sign goes on the A side only
        expected_b = c1 * b1 + c2 * b2
        torch.testing.assert_close(a_and_b(layer, "lin")[0], expected_a)
        torch.testing.assert_close(a_and_b(layer, "lin")[1], expected_b)
        delta = layer.get_delta_weight("lin")
        torch.testing.assert_close(delta, expected_b @ expected_a)
        # ... which is not the weighted sum of the deltas: the cross terms B_i @ A_j remain.
        delta_law, delta_med = layer.get_delta_weight("law"), layer.get_delta_weight("med")
        weighted_sum = weights[0] * delta_law + weights[1] * delta_med
        assert not torch.allclose(delta, weighted_sum, atol=1e-4)
        cross = c1 * c2 * (b2 @ a1 - b1 @ a2)
        torch.testing.assert_close(delta, weighted_sum + cross, atol=1e-5, rtol=1e-4)


def test_cat_gives_exactly_the_weighted_sum_of_deltas():
    model = two_adapters()
    merge_adapters(model, ["law", "med"], [0.5, 0.5], name="avg", combination_type="cat")
    assert model.peft_config["avg"].r == 8  # ranks add up
    for layer in lora_layers(model):
        expected = 0.5 * layer.get_delta_weight("law") + 0.5 * layer.get_delta_weight("med")
        torch.testing.assert_close(layer.get_delta_weight("avg"), expected, atol=1e-6, rtol=1e-5)


def test_cat_and_svd_accept_different_ranks_but_linear_does_not():
    model = two_adapters(r_b=2)
    with pytest.raises(ValueError, match="same rank"):
        merge_adapters(model, ["law", "med"], [0.5, 0.5], name="lin")
    merge_adapters(model, ["law", "med"], [1.0, 1.0], name="cat", combination_type="cat")
    assert model.peft_config["cat"].r == 6
    # svd with a rank >= the rank of the sum (4 + 2) is exact
    merge_adapters(
        model, ["law", "med"], [1.0, 1.0], name="svd", combination_type="svd", svd_rank=6
    )
    for layer in lora_layers(model):
        torch.testing.assert_close(
            layer.get_delta_weight("svd"), layer.get_delta_weight("cat"), atol=1e-5, rtol=1e-4
        )


def test_ties_runs_and_gives_a_new_adapter():
    model = two_adapters()
    merge_adapters(model, ["law", "med"], [0.5, 0.5], name="lin")
    merge_adapters(
        model, ["law", "med"], [0.5, 0.5], name="ties", combination_type="ties", density=0.5
    )
    assert model.active_adapters == ["ties"]
    for layer in lora_layers(model):
        ties = layer.get_delta_weight("ties")
        assert torch.isfinite(ties).all() and ties.abs().sum() > 0
        for other in ("law", "med", "lin"):
            assert not torch.allclose(ties, layer.get_delta_weight(other), atol=1e-4)


def test_dare_is_reproducible_with_a_seed_and_leaves_the_global_rng_alone():
    model = two_adapters()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    for name in ("d1", "d2"):
        merge_adapters(
            model,
            ["law", "med"],
            [0.5, 0.5],
            name=name,
            combination_type="dare_ties",
            density=0.5,
            seed=7,
        )
    assert torch.equal(torch.get_rng_state(), state)
    merge_adapters(
        model,
        ["law", "med"],
        [0.5, 0.5],
        name="d3",
        combination_type="dare_linear",
        density=0.5,
        seed=8,
    )
    for layer in lora_layers(model):
        assert torch.equal(layer.get_delta_weight("d1"), layer.get_delta_weight("d2"))
        assert not torch.equal(layer.get_delta_weight("d1"), layer.get_delta_weight("d3"))


def test_rslora_adapters_merge_with_the_right_scale():
    """PEFT copies use_rslora into the merged config (scaling sqrt(r)); we reset it to 1."""
    model = two_adapters(use_rslora=True)
    expected = logits(model, "law")
    merge_adapters(model, ["law", "med"], [1.0, 0.0], name="only_law")
    assert model.peft_config["only_law"].use_rslora is False
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, expected, atol=1e-5, rtol=1e-5)
    merge_adapters(model, ["law", "med"], [0.5, 0.5], name="cat", combination_type="cat")
    for layer in lora_layers(model):
        assert layer.scaling["cat"] == 1.0
        expected_delta = 0.5 * layer.get_delta_weight("law") + 0.5 * layer.get_delta_weight("med")
        torch.testing.assert_close(layer.get_delta_weight("cat"), expected_delta)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"adapters": ["law", "nope"], "weights": [1.0, 1.0]}, "unknown adapter"),
        ({"adapters": [], "weights": []}, "empty"),
        ({"adapters": ["law", "law"], "weights": [1.0, 1.0]}, "repeat"),
        ({"adapters": ["law", "med"], "weights": [1.0]}, "one weight per adapter"),
        ({"adapters": ["law", "med"], "weights": [1.0, float("nan")]}, "finite"),
        ({"combination_type": "average"}, "unsupported combination_type"),
        ({"combination_type": "ties"}, "needs a density"),
        ({"combination_type": "ties", "density": 0.0}, r"density must be in \(0, 1\]"),
        ({"combination_type": "dare_ties", "density": 1.5}, r"density must be in \(0, 1\]"),
        ({"combination_type": "linear", "density": 0.5}, "density is only used by"),
        (
            {"adapters": ["law"], "weights": [1.0], "combination_type": "ties", "density": 0.5},
            "two",
        ),
        ({"name": "law"}, "already exists"),
        ({"svd_rank": 2}, "svd_rank"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, message):
    model = two_adapters()
    arguments = {"adapters": ["law", "med"], "weights": [0.5, 0.5], "name": "merged"} | kwargs
    adapters, weights = arguments.pop("adapters"), arguments.pop("weights")
    with pytest.raises(ValueError, match=message):
        merge_adapters(model, adapters, weights, **arguments)
    assert "merged" not in model.peft_config


def test_non_lora_and_lora_variants_are_refused():
    ia3 = get_peft_model(tiny_llama(), IA3Config(target_modules=TARGETS, feedforward_modules=[]))
    ia3.add_adapter("other", IA3Config(target_modules=TARGETS, feedforward_modules=[]))
    with pytest.raises(ValueError, match="IA3 adapter; merge_adapters combines LoRA adapters only"):
        merge_adapters(ia3, ["default", "other"], [0.5, 0.5], name="merged")

    from ft_plugin.methods.bottleneck import BottleneckConfig

    bottleneck = get_peft_model(tiny_llama(), BottleneckConfig(bottleneck_size=4))
    with pytest.raises(AdapterMergeError, match="BOTTLENECK adapter"):
        merge_adapters(bottleneck, ["default"], [1.0], name="merged")

    dora = two_adapters(use_dora=True)
    with pytest.raises(ValueError, match="use_dora"):
        merge_adapters(dora, ["law", "med"], [0.5, 0.5], name="merged")

    with pytest.raises(ValueError, match="PEFT model"):
        merge_adapters(tiny_llama(), ["law"], [1.0], name="merged")
