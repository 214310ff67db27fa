"""Houlsby bottleneck adapters as a PEFT tuner (ft_plugin.methods.bottleneck), on a tiny Llama."""

from __future__ import annotations

import enum
import json
from types import SimpleNamespace

import pytest
import torch
from peft import PeftModel, get_peft_model
from peft.utils.peft_types import PeftType
from tiny import tiny_llama

from ft_plugin.methods.base import FineTuningMethod
from ft_plugin.methods.bottleneck import (
    BottleneckConfig,
    BottleneckLayer,
    BottleneckMergeError,
    BottleneckMethod,
    BottleneckModel,
    BottleneckRegistrationError,
)
from ft_plugin.methods.bottleneck import registration as reg

HIDDEN = tiny_llama().config.hidden_size
SIZE = 8


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def randomize_up(model: torch.nn.Module, adapter: str = "default", seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, BottleneckLayer) and adapter in module.bottleneck_up:
            up = module.bottleneck_up[adapter]
            with torch.no_grad():
                up.weight.copy_(torch.randn(up.weight.shape, generator=gen) * 0.5)
                up.bias.copy_(torch.randn(up.bias.shape, generator=gen) * 0.1)


def bottleneck(**kwargs) -> torch.nn.Module:
    return get_peft_model(tiny_llama(), BottleneckConfig(bottleneck_size=SIZE, **kwargs))


# --- registration ---------------------------------------------------------------------------


def test_peft_type_is_registered_and_idempotent():
    from peft.mapping import (
        PEFT_TYPE_TO_CONFIG_MAPPING,
        PEFT_TYPE_TO_PREFIX_MAPPING,
        PEFT_TYPE_TO_TUNER_MAPPING,
    )

    member = PeftType.BOTTLENECK
    assert PeftType("BOTTLENECK") is member and member == "BOTTLENECK"
    assert PEFT_TYPE_TO_CONFIG_MAPPING["BOTTLENECK"] is BottleneckConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING[member] is BottleneckModel
    assert PEFT_TYPE_TO_PREFIX_MAPPING[member] == "bottleneck_" == BottleneckModel.prefix
    n_members = len(PeftType)
    assert reg.ensure_peft_type() is member
    reg.register(BottleneckConfig, BottleneckModel)  # a second registration is a no-op
    assert len(PeftType) == n_members
    assert PeftType("LORA") is PeftType.LORA


def test_registration_refuses_a_foreign_bottleneck_method(monkeypatch):
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    class OtherModel(BottleneckModel):
        pass

    monkeypatch.setitem(PEFT_TYPE_TO_TUNER_MAPPING, PeftType.BOTTLENECK, OtherModel)
    with pytest.raises(BottleneckRegistrationError, match="already has a BOTTLENECK method"):
        reg.register(BottleneckConfig, BottleneckModel)


def test_registration_fails_loudly_if_register_peft_method_changes(monkeypatch):
    import peft.utils

    monkeypatch.setattr(peft.utils, "register_peft_method", lambda *, name, config_cls: None)
    with pytest.raises(BottleneckRegistrationError, match=r"lost its parameter.*model_cls"):
        reg.register(BottleneckConfig, BottleneckModel)


def test_enum_extension_mechanism_and_its_failure_mode(monkeypatch):
    class Kind(str, enum.Enum):  # noqa: UP042 - same shape as PeftType
        A = "A"

    member = reg.extend_str_enum(Kind, "NEW")
    assert Kind.NEW is member and Kind("NEW") is member and Kind["NEW"] is member
    assert list(Kind) == [Kind.A, member] and json.dumps(member) == '"NEW"'
    assert reg.extend_str_enum(Kind, "NEW") is member  # idempotent

    class NotStr(enum.Enum):
        A = 1

    with pytest.raises(BottleneckRegistrationError, match="no longer a str-valued Enum"):
        reg.extend_str_enum(NotStr, "B")

    # If a Python upgrade removes the machinery, importing the method says so clearly.
    monkeypatch.delattr(enum, "_proto_member")
    with pytest.raises(BottleneckRegistrationError, match="Cannot register the bottleneck"):
        reg.extend_str_enum(Kind, "OTHER")
    assert "OTHER" not in Kind.__members__


# --- the adapter ----------------------------------------------------------------------------


def test_placement_after_self_attn_and_mlp_of_every_layer():
    model = bottleneck()
    layers = model.base_model.model.model.layers
    for layer in layers:
        assert isinstance(layer.self_attn, BottleneckLayer)
        assert isinstance(layer.mlp, BottleneckLayer)
        assert type(layer.self_attn.base_layer).__name__ == "LlamaAttention"
        assert type(layer.mlp.base_layer).__name__ == "LlamaMLP"
        assert layer.self_attn.layer_idx == layer.self_attn.base_layer.layer_idx  # forwarded
    wrapped = sorted(n for n, m in model.named_modules() if isinstance(m, BottleneckLayer))
    expected = sorted(
        f"base_model.model.model.layers.{i}.{block}"
        for i in range(len(layers))
        for block in ("self_attn", "mlp")
    )
    assert wrapped == expected
    assert set(model.peft_config["default"].target_modules) == {"self_attn", "mlp"}


def test_adapter_applies_to_block_output_before_the_residual():
    model = bottleneck(init_scale=0.1)
    layer = model.base_model.model.model.layers[0]
    x = torch.randn(1, 5, HIDDEN)
    with torch.no_grad():
        h = layer.mlp.base_layer(x)
        a = layer.mlp.bottleneck_act["default"](layer.mlp.bottleneck_down["default"](h))
        expected = h + layer.mlp.bottleneck_up["default"](a)
        assert torch.allclose(layer.mlp(x), expected)
        # attention returns (hidden, weights): only element 0 is adapted
        pos = torch.arange(5)[None]
        emb = model.base_model.model.model.rotary_emb(x, pos)
        attn_out = layer.self_attn(x, position_embeddings=emb, attention_mask=None)
        base_out = layer.self_attn.base_layer(x, position_embeddings=emb, attention_mask=None)
    assert isinstance(attn_out, tuple) and len(attn_out) == len(base_out)
    assert not torch.allclose(attn_out[0], base_out[0])


def test_fresh_adapter_is_an_exact_identity(ids):
    reference = logits(tiny_llama(), ids)
    assert torch.equal(logits(bottleneck(), ids), reference)


def test_nonzero_up_projection_changes_logits_and_disable_adapter_restores(ids):
    reference = logits(tiny_llama(), ids)
    model = bottleneck()
    randomize_up(model)
    adapted = logits(model, ids)
    assert not torch.allclose(adapted, reference, atol=1e-4)
    with model.disable_adapter():
        assert torch.equal(logits(model, ids), reference)
    assert torch.equal(logits(model, ids), adapted)


def test_only_adapter_params_train_and_count_matches_formula():
    model = bottleneck()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".bottleneck_down." in n or ".bottleneck_up." in n for n in trainable)
    blocks = 2 * model.base_model.model.config.num_hidden_layers
    per_block = HIDDEN * SIZE + SIZE + SIZE * HIDDEN + HIDDEN
    assert sum(p.numel() for p in trainable.values()) == blocks * per_block
    assert model.get_nb_trainable_parameters()[0] == blocks * per_block


def test_a_few_optimizer_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = bottleneck(adapter_dropout=0.1, non_linearity="gelu")
    model.train()
    ids = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(2))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def test_save_and_from_pretrained_round_trip(tmp_path, ids):
    model = bottleneck(non_linearity="tanh")
    randomize_up(model)
    expected = logits(model, ids)
    model.save_pretrained(tmp_path)

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "BOTTLENECK"
    assert config["bottleneck_size"] == SIZE and config["non_linearity"] == "tanh"
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert saved and all("bottleneck_" in k and ".default." not in k for k in saved)

    loaded = PeftModel.from_pretrained(tiny_llama(), tmp_path)
    assert isinstance(loaded.base_model, BottleneckModel)
    assert isinstance(loaded.peft_config["default"], BottleneckConfig)
    assert torch.equal(logits(loaded, ids), expected)


@pytest.mark.filterwarnings("ignore:Adapter name 'b' should not be contained")
def test_two_adapters_switch_with_set_adapter(tmp_path, ids):
    first = bottleneck()
    randomize_up(first, seed=1)
    first.save_pretrained(tmp_path / "a")
    second = get_peft_model(tiny_llama(), BottleneckConfig(bottleneck_size=4, non_linearity="silu"))
    randomize_up(second, seed=2)
    second.save_pretrained(tmp_path / "b")
    expected_a, expected_b = logits(first, ids), logits(second, ids)

    model = PeftModel.from_pretrained(tiny_llama(), tmp_path / "a")
    model.load_adapter(tmp_path / "b", adapter_name="b")
    assert torch.equal(logits(model, ids), expected_a)
    model.set_adapter("b")
    assert model.active_adapter == "b"
    out_b = logits(model, ids)
    assert torch.equal(out_b, expected_b)
    assert not torch.allclose(out_b, expected_a, atol=1e-4)
    model.set_adapter("default")
    assert torch.equal(logits(model, ids), expected_a)


def test_merge_raises_a_clear_error_and_unload_returns_the_base(ids):
    model = bottleneck()
    randomize_up(model)
    with pytest.raises(BottleneckMergeError, match="non-linearity"):
        model.merge_and_unload()
    with pytest.raises(BottleneckMergeError, match="cannot be merged"):
        model.merge_adapter()
    with pytest.raises(BottleneckMergeError):
        model.base_model.model.model.layers[0].mlp.merge()
    base = model.unload()
    assert not any(isinstance(m, BottleneckLayer) for m in base.modules())
    assert torch.equal(logits(base, ids), logits(tiny_llama(), ids))


def test_config_validation():
    with pytest.raises(ValueError, match="non_linearity"):
        BottleneckConfig(non_linearity="swish")
    with pytest.raises(ValueError, match="bottleneck_size"):
        BottleneckConfig(bottleneck_size=0)
    with pytest.raises(ValueError, match="adapter_dropout"):
        BottleneckConfig(adapter_dropout=1.0)
    assert BottleneckConfig().peft_type is PeftType.BOTTLENECK


# --- the ft_plugin method -------------------------------------------------------------------


def test_method_builds_config_from_recipe():
    method = BottleneckMethod()
    assert isinstance(method, FineTuningMethod)
    assert method.name == "bottleneck" and method.mergeable is False
    assert "non-linearity" in method.not_mergeable_reason
    assert "\n" not in method.not_mergeable_reason
    recipe = SimpleNamespace(
        bottleneck_size=16,
        bottleneck_non_linearity="silu",
        bottleneck_dropout=0.1,
        lora_modules_to_save=["lm_head"],
    )
    config = method.peft_config(recipe, tiny_llama())
    assert isinstance(config, BottleneckConfig)
    assert (config.bottleneck_size, config.non_linearity, config.adapter_dropout) == (
        16,
        "silu",
        0.1,
    )
    assert config.modules_to_save == ["lm_head"] and config.task_type == "CAUSAL_LM"

    recipe.lora_modules_to_save = None
    model = method.prepare(tiny_llama(), recipe)
    assert isinstance(model, PeftModel) and isinstance(model.base_model, BottleneckModel)
    per_block = 2 * HIDDEN * 16 + 16 + HIDDEN
    assert model.get_nb_trainable_parameters()[0] == 2 * 2 * per_block
