"""Axolotl's model-side keys: tokens (special_tokens, tokens, eot_tokens, added_tokens_overrides,
embedding resizing), the classes a base loads with (model_type, tokenizer_type, …) and
`plugins:` with the kernel plugins' keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_recipe, write_rows
from safetensors import safe_open
from tiny import save_tiny_model, tiny_model, tiny_tokenizer
from transformers import LlamaTokenizer, set_seed

from ft_plugin import models, registry
from ft_plugin.data.preview import render_example
from ft_plugin.errors import RecipeError, UserError
from ft_plugin.train import train

TOOL = "<|tool|>"


def _load(tmp_path: Path, extra: str, **overrides: object):  # noqa: ANN202
    loaded = tiny_recipe(tmp_path, "lora", extra=extra, **overrides)
    return loaded.recipe, models.resolve_base_model(loaded.recipe.base_model)


def _model(recipe, base):  # noqa: ANN001, ANN202
    return models.load_model(recipe, base, dtype=torch.float32)


def _refusal(tmp_path: Path, extra: str) -> str:
    with pytest.raises(RecipeError) as caught:
        tiny_recipe(tmp_path, "lora", extra=extra)
    return str(caught.value)


# --- tokens ---------------------------------------------------------------------------------


def test_special_tokens_are_set_and_added_when_new(tmp_path: Path) -> None:
    recipe, base = _load(tmp_path, """special_tokens:
  bos_token: "<|begin|>"
  eos_token: "<|im_end|>"
  pad_token: "<|pad|>"
  additional_special_tokens: ["<|note|>"]
""")  # fmt: skip
    tokenizer = models.load_tokenizer(recipe, base)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|begin|>", "<|im_end|>", "<|pad|>",
    )  # fmt: skip
    assert tokenizer.eos_token_id == 257  # already in the vocabulary: not added again
    new = models.new_token_ids(tokenizer)
    assert new == sorted(tokenizer.convert_tokens_to_ids(["<|begin|>", "<|pad|>", "<|note|>"]))
    assert new == [259, 260, 261] and len(tokenizer) == 262
    assert tokenizer("<|note|>x", add_special_tokens=False)["input_ids"][0] == 261
    model = _model(recipe, base)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.get_output_embeddings().weight.shape[0] == len(tokenizer)
    assert model.config.bos_token_id == model.generation_config.bos_token_id == 259
    assert model.config.pad_token_id == 260
    assert models.new_token_ids(model) == new


def test_tokens_and_end_of_turn_tokens(tmp_path: Path) -> None:
    recipe, base = _load(
        tmp_path, f"tokens: ['{TOOL}', '<|im_start|>']\neot_tokens: ['<|im_end|>', '<|turn|>']\n"
    )
    tokenizer = models.load_tokenizer(recipe, base)
    tool, turn = tokenizer.convert_tokens_to_ids([TOOL, "<|turn|>"])
    assert models.new_token_ids(tokenizer) == [tool, turn] == [259, 260]  # <|im_start|> existed
    assert tokenizer(f"a{TOOL}b", add_special_tokens=False)["input_ids"] == [97, tool, 98]
    assert "<|turn|>" in tokenizer.all_special_tokens
    model = _model(recipe, base)
    assert model.get_input_embeddings().num_embeddings == 261
    assert model.generation_config.eos_token_id == [257, turn]  # generation stops at either
    # The turn end the chat template renders after an answer carries loss.
    rendered = render_example(tokenizer, {
        "prompt": [{"role": "user", "content": "hi"}],
        "completion": [{"role": "assistant", "content": "yo"}],
    }, 96)  # fmt: skip
    last_end = len(rendered.input_ids) - 1 - rendered.input_ids[::-1].index(257)
    assert rendered.loss_mask[last_end] == 1


def test_resizing_keys(tmp_path: Path) -> None:
    recipe, base = _load(tmp_path, f"tokens: ['{TOOL}']\nresize_token_embeddings_to_32x: true\n")
    assert _model(recipe, base).get_input_embeddings().num_embeddings == 288  # 260 up to 32x

    wide = tmp_path / "wide"
    tiny_model(vocab_size=300).save_pretrained(wide)
    tiny_tokenizer().save_pretrained(wide)
    for shrink, rows in ((False, 300), (True, 259)):
        recipe, base = _load(tmp_path, f"shrink_embeddings: {str(shrink).lower()}\n",
                             base_model=str(wide))  # fmt: skip
        assert _model(recipe, base).get_input_embeddings().num_embeddings == rows

    distances = {}
    for mean in (False, True):
        recipe, base = _load(tmp_path, f"tokens: ['{TOOL}']\nmean_resizing_embeddings: {mean}\n")
        weight = _model(recipe, base).get_input_embeddings().weight.detach()
        distances[mean] = float((weight[259] - weight[:259].mean(0)).norm())
    assert distances[True] < 1e-3 < 0.05 < distances[False]  # the mean, or a random row


def test_old_tokens_mapping_means_special_tokens(tmp_path: Path) -> None:
    recipe, _ = _load(tmp_path, "tokens:\n  bos_token: '<s>'\n  eos_token: '<|im_end|>'\n"
                      "special_tokens:\n  eos_token: '</s>'\n")  # fmt: skip
    assert recipe.tokens is None
    assert (recipe.special_tokens.bos_token, recipe.special_tokens.eos_token) == ("<s>", "</s>")


def _reserved_tokenizer_model(tmp_path: Path) -> Path:
    """The tiny model whose tokenizer has a reserved added token, id 259."""
    folder = tmp_path / "reserved"
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"extra_special_tokens": ["<|reserved_0|>"]})
    tokenizer.save_pretrained(folder)
    tiny_model(vocab_size=260).save_pretrained(folder)
    return folder


def test_added_tokens_overrides_rename_reserved_tokens(tmp_path: Path) -> None:
    folder = _reserved_tokenizer_model(tmp_path)
    recipe, base = _load(tmp_path, f"added_tokens_overrides: {{259: '{TOOL}'}}\n",
                         base_model=str(folder))  # fmt: skip
    tokenizer = models.load_tokenizer(recipe, base)
    assert tokenizer(f"x{TOOL}", add_special_tokens=False)["input_ids"] == [120, 259]
    assert len(tokenizer("<|reserved_0|>", add_special_tokens=False)["input_ids"]) > 1
    assert len(tokenizer) == 260 and models.new_token_ids(tokenizer) == [259]  # its row trains

    recipe, base = _load(tmp_path, "added_tokens_overrides: {65: 'x'}\n", base_model=str(folder))
    with pytest.raises(UserError, match="token id 65 is not an added token"):
        models.load_tokenizer(recipe, base)


def _delta(run_dir: Path, layer: str) -> torch.Tensor:
    with safe_open(str(run_dir / "adapter_model.safetensors"), "pt") as weights:
        names = [k for k in weights.keys() if "token_adapter.trainable_tokens_delta" in k]  # noqa: SIM118
        (key,) = [name for name in names if f"{layer}.token_adapter" in name]
        return weights.get_tensor(key)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])  # untied and tied output head
@pytest.mark.slow
def test_lora_trains_the_rows_of_new_tokens(tmp_path: Path, arch: str, capfd) -> None:  # noqa: ANN001
    save_tiny_model(tmp_path / arch, arch=arch)
    rows = [{"instruction": f"Use the tool on {i}", "input": "", "output": f"{TOOL} {i}"}
            for i in range(16)]  # fmt: skip
    loaded = tiny_recipe(tmp_path, "lora", extra=f"tokens: ['{TOOL}']\n", base_model=tmp_path / arch,
                         max_steps=4, sample_packing="true")  # fmt: skip
    write_rows(tmp_path / "rows.jsonl", rows)
    run_dir = train(loaded, str(tmp_path / "run")).run_dir
    err = capfd.readouterr().err
    assert "1 new token (ids 259-259): their rows of model.embed_tokens" in err
    assert ("and lm_head train" in err) is (arch == "llama")  # a tied head follows the embeddings
    config = json.loads((run_dir / "adapter_config.json").read_text())
    assert list(config["trainable_token_indices"].values())[0] == [259]

    recipe, base = loaded.recipe, models.resolve_base_model(loaded.recipe.base_model)
    set_seed(recipe.seed)  # the base as training loaded it: the new row as initialised
    start = _model(recipe, base)
    initial = start.get_input_embeddings().weight.detach().clone()
    initial_head = start.get_output_embeddings().weight.detach().clone()
    delta = _delta(run_dir, "embed_tokens")
    assert delta.shape == (1, 64)
    assert not torch.allclose(delta[0], initial[259])  # the new row learned

    from peft import PeftModel

    tuned = PeftModel.from_pretrained(start, str(run_dir))
    effective = tuned.get_input_embeddings().token_adapter.get_merged_weights(["default"])
    assert torch.equal(effective[:259], initial[:259])  # every other row frozen
    assert torch.equal(effective[259], delta[0])
    if arch == "llama":  # the untied head's new row learned too
        assert not torch.allclose(_delta(run_dir, "lm_head")[0], initial_head[259])


def test_other_methods_train_new_rows_their_way(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    recipe, base = _load(tmp_path, f"tokens: ['{TOOL}']\n")
    ia3 = registry.load_method("ia3")
    config = ia3.peft_config(recipe, model := _model(recipe, base))
    from ft_plugin.methods.base import train_new_token_rows

    train_new_token_rows(config, model, "ia3")
    assert config.modules_to_save == ["embed_tokens", "lm_head"]
    frozen = registry.load_method("freeze").prepare(_model(recipe, base), recipe)
    assert frozen.get_input_embeddings().weight.requires_grad
    assert frozen.get_output_embeddings().weight.requires_grad
    err = capfd.readouterr().err
    assert "train whole with the ia3 adapter (PEFT modules_to_save)" in err
    assert "1 new tokens: the input embeddings and the output head train" in err


# --- model_type / tokenizer_type ------------------------------------------------------------


def test_model_type_loads_that_class(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    for key in ("model_type", "type_of_model"):
        recipe, base = _load(tmp_path, f"{key}: LlamaForCausalLM\n")
        assert type(_model(recipe, base)).__name__ == "LlamaForCausalLM"
    save_tiny_model(tmp_path / "qwen2", arch="qwen2")
    recipe, base = _load(tmp_path, "model_type: Qwen2ForCausalLM\n", base_model=tmp_path / "qwen2")
    assert type(_model(recipe, base)).__name__ == "Qwen2ForCausalLM"
    assert "model_type" not in capfd.readouterr().err
    # Axolotl's Mistral example run on a Llama base: the base loads as its own class.
    recipe, base = _load(tmp_path, "model_type: MistralForCausalLM\n")
    assert type(_model(recipe, base)).__name__ == "LlamaForCausalLM"
    assert ("model_type: MistralForCausalLM is made for mistral models and base_model "
            f"{recipe.base_model} is llama: it loads as LlamaForCausalLM") in capfd.readouterr().err  # fmt: skip
    # Llama 4's examples name its vision-language class: the text model trains.
    recipe, base = _load(tmp_path, "model_type: Llama4ForConditionalGeneration\n")
    assert type(_model(recipe, base)).__name__ == "LlamaForCausalLM"
    assert ("model_type: Llama4ForConditionalGeneration is not a causal-LM class of transformers "
            "(a vision-language one)") in capfd.readouterr().err  # fmt: skip


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("AutoModelForSequenceClassification", "not a causal language model class"),
        ("AutoModelForImageTextToText", "not a causal language model class"),
        ("MambaLMHeadModel", "not a causal language model class"),
        ("NoSuchForCausalLM", "not a class of transformers"),
        ("os.system", "not a causal language model class"),
    ],
)
def test_model_type_refuses_what_is_not_a_causal_lm(tmp_path: Path, value: str, says: str) -> None:
    line = _refusal(tmp_path, f"model_type: {value}\n")
    assert f"model_type: {value} is {says}" in line and "\n" not in line


def test_model_type_and_type_of_model_must_agree(tmp_path: Path) -> None:
    line = _refusal(tmp_path, "model_type: LlamaForCausalLM\ntype_of_model: AutoModelForCausalLM\n")
    assert "model_type and type_of_model are the same key" in line


def _llama_tokenizer_model(tmp_path: Path) -> Path:
    """A tiny model whose tokenizer is a real LlamaTokenizer (SentencePiece-style ▁ marks)."""
    folder = tmp_path / "llama-tokenizer"
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "▁a": 6, "▁b": 7, "<x>": 8}
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[("▁", "a"), ("▁", "b")])
    tokenizer.add_special_tokens({"extra_special_tokens": ["<x>"]})
    tokenizer.save_pretrained(folder)
    tiny_model(vocab_size=9, eos_token_id=2, pad_token_id=0).save_pretrained(folder)
    return folder


def test_tokenizer_type_and_legacy(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    folder = _llama_tokenizer_model(tmp_path)
    ids = {}
    for legacy in ("true", "false"):
        recipe, base = _load(tmp_path, f"tokenizer_type: LlamaTokenizer\ntokenizer_legacy: {legacy}\n",
                             base_model=str(folder))  # fmt: skip
        tokenizer = models.load_tokenizer(recipe, base)
        assert type(tokenizer).__name__ == "LlamaTokenizer"
        ids[legacy] = tokenizer("a<x>a b", add_special_tokens=False)["input_ids"]
    assert ids == {"true": [6, 8, 6, 7], "false": [6, 8, 4, 7]}  # after <x>: "▁a" or "a"
    assert "tokenizer_type" not in capfd.readouterr().err

    # LlamaTokenizer over a byte-level tokenizer would split text differently: not used.
    recipe, base = _load(tmp_path, "tokenizer_type: LlamaTokenizer\ntokenizer_use_fast: false\n")
    tokenizer = models.load_tokenizer(recipe, base)
    assert tokenizer("hi there")["input_ids"] == tiny_tokenizer()("hi there")["input_ids"]
    err = capfd.readouterr().err
    assert "tokenizer_type: LlamaTokenizer would split text differently" in err
    assert "saved as TokenizersBackend: it loads as TokenizersBackend" in err
    assert "tokenizer_use_fast: false: transformers 5 has one tokenizer per model" in err


def test_tokenizer_type_refuses_what_is_not_a_tokenizer(tmp_path: Path) -> None:
    for value in ("BertModel", "subprocess.Popen"):
        assert f"tokenizer_type: {value} is not a tokenizer class of transformers" in _refusal(
            tmp_path, f"tokenizer_type: {value}\n"
        )


# --- attention names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["xformers", "flex_attention", "kernels-community/vllm-flash-attn3"]
)
def test_axolotl_attention_names_run_as_auto(tmp_path: Path, name: str, capfd) -> None:  # noqa: ANN001
    recipe, base = _load(tmp_path, f"attn_implementation: {name}\n", sample_packing="true")
    assert models.choose_attention(recipe) == "sdpa_packed"  # no CUDA flash-attn here
    model = _model(recipe, base)
    assert model.config._attn_implementation == "sdpa_packed"
    line = f"attn_implementation: {name} is not available in ft-plugin: sdpa_packed runs instead"
    assert line in capfd.readouterr().err


def test_unknown_attention_names_are_refused(tmp_path: Path) -> None:
    assert "attn_implementation: 'flash' is not an attention kernel: write one of auto" in (
        _refusal(tmp_path, "attn_implementation: flash\n")
    )


# --- plugins --------------------------------------------------------------------------------

KERNELS = """plugins:
  - axolotl.integrations.liger.LigerPlugin
  - axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin
liger_rope: true
liger_rms_norm: true
liger_glu_activation: true
liger_fused_linear_cross_entropy: true
cut_cross_entropy: true
"""


def test_kernel_plugins_are_accepted_and_say_what_runs(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    import importlib.util

    recipe, base = _load(tmp_path, KERNELS)
    assert recipe.plugins and recipe.liger_rope and recipe.keys_without_plugin() == []
    _model(recipe, base)
    err = capfd.readouterr().err.splitlines()
    liger = [line for line in err if "plugins: Liger:" in line]
    cce = [line for line in err if "plugins: Cut Cross Entropy:" in line]
    assert len(liger) == len(cce) == 1
    if torch.cuda.is_available() and importlib.util.find_spec("liger_kernel"):
        assert "applied Liger's rope, rms_norm, swiglu kernels" in liger[0]
    else:
        assert (
            "its kernels are not applied (they need a CUDA GPU and liger-kernel; here: " in liger[0]
        )
        assert "the standard PyTorch modules run" in liger[0]
    assert "TRL's fused LM head already computes the loss in tiles" in cce[0]


def test_the_swanlab_tracker_has_no_effect(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    recipe, base = _load(tmp_path, "plugins: [axolotl.integrations.swanlab.SwanLabPlugin]\n")
    _model(recipe, base)
    assert "plugins: SwanLab: no effect here: ft-plugin reports to TensorBoard" in (
        capfd.readouterr().err
    )


def test_kernel_keys_without_their_plugin_say_so(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    recipe, base = _load(tmp_path, "liger_rope: true\ncut_cross_entropy: false\n")
    assert recipe.keys_without_plugin() == ["liger_rope"]
    _model(recipe, base)
    assert "liger_rope: no effect without their plugin in plugins:" in capfd.readouterr().err


def test_other_integrations_are_refused_by_name(tmp_path: Path) -> None:
    line = _refusal(tmp_path, """plugins:
  - axolotl.integrations.liger.LigerPlugin
  - axolotl.integrations.llm_compressor.LLMCompressorPlugin
  - axolotl.integrations.grokfast.GrokfastPlugin
""")  # fmt: skip
    assert ("plugins: axolotl.integrations.llm_compressor.LLMCompressorPlugin is not available "
            "in ft-plugin: sparse fine-tuning") in line  # fmt: skip
    assert "axolotl.integrations.grokfast.GrokfastPlugin is not available in ft-plugin: " in line
    assert "LigerPlugin is not" not in line and "\n" not in line
