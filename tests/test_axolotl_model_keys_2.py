"""More of Axolotl's model, PEFT and dataset keys: `lora_target_modules` as a regex,
`lora_target_parameters` (MoE experts), `bnb_config_kwargs`, the base's revision by
Axolotl's names, `model_config` overrides, `reinit_weights`, reasoning traces in chat rows
(`field_thinking`, `template_thinking_key`), `chat_template_kwargs`, `min_sample_len` and
`type: alpaca:STYLE`."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from helpers import require, tiny_recipe, write_rows
from safetensors.torch import load_file
from tiny import save_tiny_model, tiny_tokenizer

from ft_plugin import models, registry
from ft_plugin.config import LoadedRecipe, load_recipe
from ft_plugin.config.schema import Recipe
from ft_plugin.config.schema.datasets import CHAT_TEMPLATE_CALL_ARGUMENTS
from ft_plugin.config.schema.model import BNB_CONFIG_KEYS, BNB_OWN_KEYS
from ft_plugin.config.trust import remote_problems
from ft_plugin.config.validation import known_dataset_type
from ft_plugin.config.yaml_source import parse_yaml
from ft_plugin.data import build_training_data
from ft_plugin.data.build import OVERLONG, SHORT
from ft_plugin.data.preview import render_example
from ft_plugin.engine import prepare_run
from ft_plugin.errors import DataError, RecipeError, UserError
from ft_plugin.train import train

EXPERTS = "mlp.experts.down_proj"


def _load(tmp_path: Path, extra: str, adapter: str = "lora", **overrides: object):  # noqa: ANN202
    loaded = tiny_recipe(tmp_path, adapter, extra=extra, **overrides)
    return loaded.recipe, models.resolve_base_model(loaded.recipe.base_model)


def _refusal(tmp_path: Path, extra: str, adapter: str = "lora") -> list[str]:
    with pytest.raises(RecipeError) as caught:
        tiny_recipe(tmp_path, adapter, extra=extra)
    return str(caught.value).splitlines()


def _adapted(recipe, base):  # noqa: ANN001, ANN202
    method = registry.load_method(recipe.adapter)
    quantization = method.quantization_config(recipe, torch.float32)
    model = models.load_model(recipe, base, dtype=torch.float32, quantization_config=quantization)
    return method.prepare(model, recipe)


def _lora_modules(model: torch.nn.Module) -> list[str]:
    """Names of the modules that carry a LoRA adapter, without PEFT's prefix."""
    from peft.tuners.lora import LoraLayer

    return sorted(name.removeprefix("base_model.model.") for name, module in model.named_modules()
                  if isinstance(module, LoraLayer))  # fmt: skip


def save_tiny_mixtral(path: Path) -> Path:
    """A tiny random Mixtral (transformers 5 stores its experts as fused nn.Parameters)."""
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=259, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
        max_position_embeddings=512, eos_token_id=257, pad_token_id=258, bos_token_id=None,
    )  # fmt: skip
    MixtralForCausalLM(config).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


# ── lora_target_modules as a regular expression ──────────────────────────────────────────


def test_a_regex_selects_exactly_the_modules_it_matches(tmp_path: Path) -> None:
    pattern = r"model\.layers\.1\.self_attn\.(q|v)_proj"
    recipe, base = _load(tmp_path, f"lora_target_modules: '{pattern}'\n")
    assert recipe.lora_target_modules == pattern  # one string, not a list of letters
    assert _lora_modules(_adapted(recipe, base)) == [
        "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj",
    ]  # fmt: skip
    # with lora_target_linear the linear layers are added to it, as in Axolotl
    recipe, base = _load(tmp_path, f"lora_target_modules: '{pattern}'\nlora_target_linear: true\n")
    adapted = _lora_modules(_adapted(recipe, base))
    assert len(adapted) == 14 and "model.layers.0.mlp.down_proj" in adapted  # 7 linears x 2
    recipe, base = _load(tmp_path, "lora_target_modules: [q_proj]\nlora_target_linear: true\n")
    assert len(_lora_modules(_adapted(recipe, base))) == 14


def test_a_regex_matching_nothing_or_malformed_is_one_line(tmp_path: Path) -> None:
    # Axolotl's Gemma 4 example names multimodal module paths; on a text model: one line
    recipe, base = _load(
        tmp_path, "lora_target_modules: 'model.language_model.layers.[\\d]+.mlp'\n"
    )
    with pytest.raises(UserError, match=r"matches no module of this model .* look like model\."):
        _adapted(recipe, base)
    lines = _refusal(tmp_path, "lora_target_modules: '(q|v_proj'\n")
    assert (
        len(lines) == 1
        and "lora_target_modules: '(q|v_proj' is not a regular expression" in lines[0]
    )


# ── lora_target_parameters: LoRA on nn.Parameter (MoE experts) ────────────────────────────


def test_target_parameters_wrap_the_fused_experts_and_train(tmp_path: Path) -> None:
    from peft.tuners.lora.layer import ParamWrapper

    model_dir = save_tiny_mixtral(tmp_path / "mixtral")
    loaded = tiny_recipe(tmp_path, "lora", extra=f"lora_target_parameters: [{EXPERTS}]\n",
                         base_model=str(model_dir), max_steps=2)  # fmt: skip
    recipe = loaded.recipe
    assert recipe.lora_dropout == 0.0  # Axolotl's default with expert parameters
    model = _adapted(recipe, models.resolve_base_model(recipe.base_model))
    wrapped = {name: module.parameter_name for name, module in model.named_modules()
               if isinstance(module, ParamWrapper)}  # fmt: skip
    assert wrapped == {f"base_model.model.model.layers.{i}.mlp.experts": "down_proj"
                       for i in (0, 1)}  # fmt: skip
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".mlp.experts.lora_" in name for name in trainable)  # only them
    result = train(loaded, str(tmp_path / "run"))
    assert result.metrics["steps"] == 2
    config = json.loads((result.run_dir / "adapter_config.json").read_text())
    assert config["target_parameters"] == [EXPERTS] and config["target_modules"] in ([], None)


def test_target_parameters_refuse_what_peft_cannot_train(tmp_path: Path) -> None:
    lines = _refusal(tmp_path, f"lora_target_parameters: {EXPERTS}\nlora_dropout: 0.1\n"
                               "lora_init: pissa\n")  # fmt: skip
    assert [line.split(": ")[1] for line in lines] == ["lora_dropout", "lora_init"]
    assert "must be 0 with lora_target_parameters" in lines[0]
    recipe, base = _load(tmp_path, f"lora_target_parameters: {EXPERTS}\n")  # a Llama: no experts
    assert recipe.lora_target_parameters == [EXPERTS]  # one name, not a list of letters
    with pytest.raises(UserError, match=f"{EXPERTS} names no parameter of this model"):
        _adapted(recipe, base)


# ── bnb_config_kwargs ─────────────────────────────────────────────────────────────────────


def test_bnb_config_keys_are_the_arguments_of_bits_and_bytes_config() -> None:
    from transformers import BitsAndBytesConfig

    arguments = set(inspect.signature(BitsAndBytesConfig.__init__).parameters) - {"self", "kwargs"}
    assert arguments == {*BNB_CONFIG_KEYS, *BNB_OWN_KEYS}


def test_bnb_config_kwargs_are_merged_into_the_quantization_config(tmp_path: Path) -> None:
    require("bitsandbytes", "the qlora extra (make setup installs .[all])")
    recipe, _ = _load(tmp_path, "bnb_config_kwargs:\n  bnb_4bit_quant_storage: bfloat16\n"
                                "  bnb_4bit_use_double_quant: false\n  bnb_4bit_quant_type: fp4\n",
                      adapter="qlora")  # fmt: skip
    config = registry.load_method("qlora").quantization_config(recipe, torch.float32)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "fp4"
    assert config.bnb_4bit_quant_storage == torch.bfloat16 and not config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.float32  # ours where the kwargs are silent
    # LoRA over an 8-bit base: the kwargs reach the loaded layers
    recipe, base = _load(tmp_path, "load_in_8bit: true\nbnb_config_kwargs:\n"
                                   "  llm_int8_threshold: 4.0\n")  # fmt: skip
    model = _adapted(recipe, base)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    assert type(q_proj).__name__ == "Linear8bitLt" and q_proj.state.threshold == 4.0
    recipe, _ = _load(tmp_path, "bnb_config_kwargs: {bnb_4bit_quant_storage: int3}\n",
                      adapter="qlora")  # fmt: skip
    with pytest.raises(UserError, match="^bnb_config_kwargs: .*bnb_4bit_quant_storage"):
        registry.load_method("qlora").quantization_config(recipe, torch.float32)


def test_bnb_config_kwargs_refuse_other_keys_in_one_line(tmp_path: Path) -> None:
    lines = _refusal(tmp_path, "bnb_config_kwargs: {compress_statistics: true, load_in_4bit: true}\n",
                     adapter="qlora")  # fmt: skip
    assert len(lines) == 1
    assert "bnb_config_kwargs: compress_statistics: not BitsAndBytesConfig arguments" in lines[0]
    assert "load_in_4bit: a recipe key of its own" in lines[0]


# ── revision_of_model / model_revision ────────────────────────────────────────────────────


@pytest.mark.parametrize("key", ["model_revision", "revision_of_model", "base_model_revision"])
def test_the_revision_spellings_load_as_base_model_revision(tmp_path: Path, key: str) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra=f"{key}: v1.0\n")
    assert loaded.recipe.base_model_revision == "v1.0"
    assert "base_model_revision: v1.0" in loaded.to_yaml().splitlines()
    assert not any(line.startswith(("model_revision", "revision_of_model"))
                   for line in loaded.to_yaml().splitlines())  # fmt: skip
    again = Recipe.model_validate(loaded.recipe.model_dump(by_alias=True))  # as stages do
    assert again.base_model_revision == "v1.0"


def test_two_revision_spellings_that_differ_are_one_error(tmp_path: Path) -> None:
    lines = _refusal(tmp_path, "base_model_revision: main\nmodel_revision: v2\n")
    line = (tmp_path / "lora.yaml").read_text().splitlines().index("model_revision: v2") + 1
    assert lines == [
        f"{tmp_path / 'lora.yaml'}:{line}: model_revision: v2 contradicts "
        "base_model_revision: main; both name the revision of base_model: give one"
    ]
    assert tiny_recipe(tmp_path, "lora", extra="model_revision: v2\nrevision_of_model: v2\n")


def test_model_revision_chooses_the_commit_of_a_hub_base(tmp_path: Path) -> None:
    from hub_server import run_hub_server
    from huggingface_hub import HfApi

    for seed in (0, 1):
        save_tiny_model(tmp_path / f"seed{seed}", seed=seed)
    with run_hub_server() as hub, hub.patched_client():
        api = HfApi()
        api.create_repo("test-user/tiny")
        api.upload_folder(folder_path=tmp_path / "seed0", repo_id="test-user/tiny")
        api.create_branch("test-user/tiny", branch="dev")
        api.upload_folder(folder_path=tmp_path / "seed1", repo_id="test-user/tiny", revision="dev")
        weights = {}
        for revision in ("main", "dev"):
            recipe, _ = _load(
                tmp_path, f"model_revision: {revision}\n", base_model="test-user/tiny"
            )
            base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
            model = models.load_model(recipe, base, dtype=torch.float32)
            weights[revision] = model.get_input_embeddings().weight.detach()
    dev = load_file(tmp_path / "seed1" / "model.safetensors")["model.embed_tokens.weight"]
    assert torch.equal(weights["dev"], dev) and not torch.equal(weights["main"], dev)


def test_a_remote_recipe_may_not_choose_the_revision_whose_code_runs() -> None:
    doc = parse_yaml("trust_remote_code: true\nmodel_revision: evil\nrevision_of_model: evil\n",
                     "hf://o/r/a.yaml", remote=True)  # fmt: skip
    flagged = {".".join(map(str, found.path)) for found, _, _ in remote_problems(doc)}
    assert {"model_revision", "revision_of_model"} <= flagged


# ── model_config (overrides_of_model_config) ──────────────────────────────────────────────


def test_model_config_overrides_reach_the_loaded_model(tmp_path: Path) -> None:
    model_dir = save_tiny_mixtral(tmp_path / "mixtral")
    recipe, base = _load(tmp_path, "model_config:\n  output_router_logits: true\n"
                                   "  router_aux_loss_coef: 0.5\n", base_model=str(model_dir))  # fmt: skip
    assert recipe.overrides_of_model_config == {"output_router_logits": True,
                                                "router_aux_loss_coef": 0.5}  # fmt: skip
    model = models.load_model(recipe, base, dtype=torch.float32)
    assert model.config.output_router_logits and model.config.router_aux_loss_coef == 0.5
    assert model(torch.tensor([[1, 2, 3]])).aux_loss is not None  # the router loss is computed
    plain, _ = _load(tmp_path, "", base_model=str(model_dir))
    assert (
        models.load_model(plain, base, dtype=torch.float32)(torch.tensor([[1, 2]])).aux_loss is None
    )
    again = _load(
        tmp_path, "overrides_of_model_config: {num_hidden_layers: 1}\n"
    )  # Axolotl's inner name
    assert len(models.load_model(*again, dtype=torch.float32).model.layers) == 1


def test_model_config_sets_a_sub_config_key_by_key() -> None:
    from transformers import Gemma3Config

    config = Gemma3Config()
    vision = config.vision_config.hidden_size
    models.apply_config_overrides(config, {"text_config": {"rope_theta": 12345.0}})
    assert config.text_config.rope_theta == 12345.0 and config.vision_config.hidden_size == vision


def test_model_config_may_not_load_code(tmp_path: Path) -> None:
    lines = _refusal(tmp_path, "model_config:\n  auto_map: {AutoModelForCausalLM: x.Evil}\n"
                               "  text_config: {trust_remote_code: true}\n")  # fmt: skip
    assert len(lines) == 1
    assert (
        "model_config: auto_map, text_config.trust_remote_code: would load Python code" in lines[0]
    )
    lines = _refusal(tmp_path, "rope_scaling: {rope_type: linear, factor: 2.0}\n"
                               "model_config: {rope_scaling: {rope_type: linear, factor: 4.0}}\n")  # fmt: skip
    assert len(lines) == 1 and "rope_scaling: differs from model_config.rope_scaling" in lines[0]


# ── reinit_weights ────────────────────────────────────────────────────────────────────────


def test_reinit_weights_trains_fresh_weights_of_the_same_architecture(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    tiny_recipe(tmp_path, "full")  # writes the tiny model
    path = tmp_path / "pretrain.yaml"  # Axolotl's pre-training examples set no adapter
    path.write_text((tmp_path / "full.yaml").read_text().replace("adapter: full\n", "")
                    + "reinit_weights: true\n", encoding="utf-8")  # fmt: skip
    loaded = load_recipe(str(path), {"max_steps": 2})
    assert loaded.recipe.adapter == "full"  # every weight trains, as in Axolotl
    recipe, base = loaded.recipe, models.resolve_base_model(loaded.recipe.base_model)
    pretrained = load_file(tmp_path / "tiny-model" / "model.safetensors")
    fresh = models.load_model(recipe, base, dtype=torch.float32)
    assert "reinit_weights: " in capfd.readouterr().err
    state = fresh.state_dict()
    assert fresh.config.num_hidden_layers == 2 and set(pretrained) <= set(state)
    changed = [k for k, v in pretrained.items() if v.dim() == 2 and not torch.equal(v, state[k])]
    assert len(changed) == sum(v.dim() == 2 for v in pretrained.values())  # every matrix is new
    result = train(loaded, str(tmp_path / "run"))
    assert result.metrics["steps"] == 2 and result.metrics["train_loss"] > 0
    saved = load_file(result.run_dir / "model.safetensors")  # the trained weights are kept
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(saved[key], pretrained[key])


@pytest.mark.parametrize("adapter", ["lora", "qlora"])
def test_reinit_weights_refuses_an_adapter_that_would_lose_them(
    tmp_path: Path, adapter: str
) -> None:
    lines = _refusal(tmp_path, "reinit_weights: true\n", adapter=adapter)
    assert len(lines) == 1 and "reinit_weights: the random base weights would be lost" in lines[0]


# ── reasoning traces: field_thinking, template_thinking_key ──────────────────────────────

THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{% endif %}"
    "{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _chat_recipe(tmp_path: Path, rows: list[dict], entry: str = "", top: str = "") -> LoadedRecipe:
    """A chat_template dataset of ``rows`` (``entry``: its keys) on a tiny model (``top``:
    more recipe keys), written to tmp_path/chat.yaml and loaded."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model = save_tiny_model(tmp_path / "tiny")
    path = tmp_path / "chat.yaml"
    path.write_text(
        f"base_model: {model}\ndatasets:\n  - path: {data}\n    type: chat_template\n"
        + "".join(f"    {line}\n" for line in entry.splitlines())
        + f"sequence_len: 256\nmax_steps: 1\nreport_to: none\nbf16: false\nlora_r: 4\n{top}",
        encoding="utf-8",
    )
    return load_recipe(str(path))


def _trained_text(tokenizer, row: dict) -> str:  # noqa: ANN001
    return tokenizer.decode([t for t, m in zip(row["input_ids"], row["completion_mask"],
                                               strict=True) if m])  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "key", "template"),
    [("field_thinking: thinking", "thinking", THINKING_TEMPLATE),
     ("", "reasoning_content", THINKING_TEMPLATE),  # Axolotl's default for both keys
     ("template_thinking_key: thinking",  # gpt-oss templates read message.thinking
      "reasoning_content", THINKING_TEMPLATE.replace("reasoning_content", "thinking"))],
)  # fmt: skip
def test_a_reasoning_trace_reaches_the_template_and_carries_loss(
    tmp_path: Path, entry: str, key: str, template: str
) -> None:
    rows = [{"messages": [{"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4.", key: "Two and two make four."}]}]  # fmt: skip
    loaded = _chat_recipe(tmp_path, rows, entry, f"chat_template_jinja: {json.dumps(template)}\n")
    tokenizer = models.load_tokenizer(
        loaded.recipe, models.resolve_base_model(str(tmp_path / "tiny"))
    )
    row = build_training_data(loaded.recipe, tokenizer).train[0]
    text = tokenizer.decode(row["input_ids"])
    assert "<|im_start|>assistant\n<think>Two and two make four.</think>4.<|im_end|>" in text
    # the trace carries loss with the answer (the diff's placeholder turn has none: Axolotl's)
    assert _trained_text(tokenizer, row) == "<think>Two and two make four.</think>4.<|im_end|>"


def test_thinking_keys_are_chat_row_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(f"datasets:\n  - path: {write_rows(tmp_path / 'r.jsonl')}\n    type: alpaca\n"
                    "    field_thinking: thinking\n", encoding="utf-8")  # fmt: skip
    with pytest.raises(RecipeError, match="field_thinking: read by type: chat_template rows only"):
        load_recipe(str(path))


# ── chat_template_kwargs ──────────────────────────────────────────────────────────────────

SWITCH_TEMPLATE = THINKING_TEMPLATE.replace(
    "{% for m in messages %}",
    "{% if enable_thinking is defined and not enable_thinking %}[no-think]{% endif %}"
    "{% for m in messages %}",
)


def test_chat_template_kwargs_reach_every_rendering_of_chat_rows(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    ]
    template = f"chat_template_jinja: {json.dumps(SWITCH_TEMPLATE)}\n"
    variables = "chat_template_kwargs:\n  enable_thinking: false\n"
    loaded = _chat_recipe(tmp_path, rows, "", template + variables)
    alpaca = write_rows(tmp_path / "alpaca.jsonl", [{"instruction": "Hey", "output": "Hello"}])
    mixed = tmp_path / "mixed.yaml"  # a chat_template dataset (ours) and an alpaca one (TRL's)
    mixed.write_text(Path(loaded.source).read_text().replace(
        "datasets:\n", f"datasets:\n  - path: {alpaca}\n    type: alpaca\n"), encoding="utf-8")  # fmt: skip
    prepared = prepare_run(load_recipe(str(mixed)), str(tmp_path / "run"))
    tokenizer = prepared.trainer.processing_class
    texts = [tokenizer.decode(row["input_ids"]) for row in prepared.trainer.train_dataset]
    assert len(texts) == 2 and all(text.startswith("[no-think]<|im_start|>user") for text in texts)
    for row in prepared.data.train:  # the preview renders them the same way
        assert tokenizer.decode(render_example(tokenizer, row, 256).input_ids) in texts
    plain = _chat_recipe(tmp_path / "plain", rows, "", template)
    row = build_training_data(plain.recipe, tokenizer).train[0]
    assert tokenizer.decode(row["input_ids"]).startswith("<|im_start|>user")


def test_alpaca_rows_rendered_by_trl_get_the_template_variables(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra=(
        f"chat_template_jinja: {json.dumps(SWITCH_TEMPLATE)}\n"
        "chat_template_kwargs: {enable_thinking: false}\n"))  # fmt: skip
    prepared = prepare_run(loaded, str(tmp_path / "run"))
    tokenizer = prepared.trainer.processing_class
    first = prepared.trainer.train_dataset[0]
    assert tokenizer.decode(first["input_ids"]).startswith("[no-think]")
    assert render_example(tokenizer, prepared.data.train[0], 96).input_ids == first["input_ids"]


def test_chat_template_kwargs_may_not_set_apply_chat_template_arguments(tmp_path: Path) -> None:
    from transformers import PreTrainedTokenizerBase

    own = set(inspect.signature(PreTrainedTokenizerBase.apply_chat_template).parameters)
    assert own - {"self", "kwargs", "tools", "documents"} <= set(CHAT_TEMPLATE_CALL_ARGUMENTS)
    lines = _refusal(tmp_path, "chat_template_kwargs: {add_generation_prompt: true}\n")
    assert (
        len(lines) == 1 and "add_generation_prompt: an argument of apply_chat_template" in lines[0]
    )


# ── min_sample_len ────────────────────────────────────────────────────────────────────────


def test_min_sample_len_drops_short_rows_and_counts_them(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora")
    recipe = loaded.recipe
    tokenizer = models.load_tokenizer(recipe, models.resolve_base_model(recipe.base_model))
    everything = build_training_data(recipe, tokenizer)
    lengths = sorted(render_example(tokenizer, r, 4096).full_length for r in everything.train)
    cut = sorted(set(lengths))[-1]  # the longest rows stay
    data = build_training_data(recipe.model_copy(update={"min_sample_len": cut}), tokenizer)
    short = sum(length < cut for length in lengths)
    assert 0 < short < len(lengths)
    assert data.dropped[SHORT] == short and data.dropped[OVERLONG] == everything.dropped[OVERLONG]
    assert len(data.train) == len(everything.train) - short
    assert all(render_example(tokenizer, r, 4096).full_length >= cut for r in data.train)
    assert f"min_sample_len: dropped {short} rows shorter than {cut} tokens" in data.notes
    with pytest.raises(DataError, match="min_sample_len: 5000 is longer than every training"):
        build_training_data(recipe.model_copy(update={"min_sample_len": 5000}), tokenizer)


def test_min_sample_len_drops_short_raw_text_windows(tmp_path: Path) -> None:
    corpus = write_rows(tmp_path / "c.jsonl", [{"text": "a" * 40}, {"text": "tiny"}])
    loaded = tiny_recipe(tmp_path, "lora")
    recipe = loaded.recipe.model_copy(update={
        "datasets": [loaded.recipe.datasets[0].model_copy(update={"path": str(corpus),
                                                                   "type": "completion"})],
        "min_sample_len": 10})  # fmt: skip
    tokenizer = models.load_tokenizer(recipe, models.resolve_base_model(recipe.base_model))
    data = build_training_data(recipe, tokenizer)
    assert [r["text"] for r in data.train] == ["a" * 40] and data.dropped[SHORT] == 1


# ── type: alpaca:STYLE ────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("style", ["chat", "phi", "instruct", "chatml"])
def test_alpaca_with_a_prompt_style_is_alpaca_with_one_note(tmp_path: Path, style: str) -> None:
    plain = tiny_recipe(tmp_path, "lora").recipe
    styled = tiny_recipe(tmp_path, "lora", **{"datasets.0.type": f"alpaca:{style}"}).recipe
    assert styled.datasets[0].type == "alpaca" and styled.datasets[0].prompt_style == style
    assert known_dataset_type(f"alpaca:{style}")
    data, same = build_training_data(styled), build_training_data(plain)
    assert data.train.to_list() == same.train.to_list()
    notes = [n for n in data.notes if "alpaca:" in n]
    assert len(notes) == 1 and notes[0].startswith(f"datasets.0.type: alpaca:{style}: ")
    assert "not applied" in notes[0] and "chat template" in notes[0]
    assert not [n for n in same.notes if "alpaca:" in n]


@pytest.mark.parametrize(
    ("kind", "says"),
    [("alpaca:chatty", "unknown dataset type 'alpaca:chatty' (did you mean 'alpaca:chat'?)"),
     ("chat_template:chatml", "unknown dataset type 'chat_template:chatml'")],
)  # fmt: skip
def test_an_unknown_style_or_type_is_refused_with_the_known_list(
    tmp_path: Path, kind: str, says: str
) -> None:
    with pytest.raises(RecipeError) as caught:
        tiny_recipe(tmp_path, "lora", **{"datasets.0.type": kind})
    lines = str(caught.value).splitlines()
    assert len(lines) == 1 and says in lines[0]
    assert "known: alpaca, chat_template" in lines[0] and "alpaca:phi" in lines[0]
    assert not known_dataset_type(kind)
