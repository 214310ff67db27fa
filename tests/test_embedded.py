"""End to end on the embedded SmolLM2-135M-Instruct: the builtin recipes train and the adapter works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ft_plugin.config import load_recipe
from ft_plugin.models import load_tokenizer, resolve_base_model
from ft_plugin.train import train

pytestmark = [pytest.mark.e2e]

QUICK = {
    "max_steps": 3,
    "micro_batch_size": 2,
    "sequence_len": 128,
    "val_set_size": 4,
    "report_to": "none",
}


def test_embedded_model_is_a_real_instruct_model() -> None:
    from transformers import AutoModelForCausalLM

    recipe = load_recipe("medical-lora").recipe
    base = resolve_base_model(recipe.base_model)
    assert base.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (Path(base.path) / "model.safetensors").is_file()
    config = json.loads((Path(base.path) / "config.json").read_text())
    assert "quantization_config" not in config
    tokenizer = load_tokenizer(recipe, base)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(base.path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the normal human body temperature in Celsius?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=40, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "37" in answer, answer


@pytest.mark.parametrize("name", ["medical-lora", "medical-qlora"])
def test_builtin_recipe_trains_and_the_adapter_changes_the_output(
    tmp_path: Path, name: str
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = train(load_recipe(name, QUICK), str(tmp_path / name))
    run = result.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["eval_loss"] > 0
    config = json.loads((run / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 16
    base = resolve_base_model("embedded:smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    ids = torch.tensor([[1, 504, 3458, 282, 260, 1694]])
    with torch.no_grad():
        before = model(ids).logits.clone()
        after = PeftModel.from_pretrained(model, run)(ids).logits
    assert not torch.allclose(before, after, atol=1e-5)


def test_every_builtin_recipe_keeps_all_of_its_own_sample_rows() -> None:
    """A builtin recipe's sequence_len fits its samples: none dropped as over-long."""
    from ft_plugin import registry
    from ft_plugin.data import build_training_data
    from ft_plugin.data.build import OVERLONG

    for name in sorted(registry.recipes()):
        recipe = load_recipe(name).recipe
        tokenizer = load_tokenizer(recipe, resolve_base_model(recipe.base_model))
        data = build_training_data(recipe, tokenizer)
        assert data.dropped[OVERLONG] == 0, (name, data.dropped)
