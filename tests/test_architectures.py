"""The architectures Axolotl's example configs name (Llama, Mistral, Qwen2, Qwen3, Gemma 3,
Phi-3), tiny and random: each trains LoRA on packed rows, and each packed row attends only to
itself (sliding windows included); a model packing cannot serve falls back, with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import assert_packed_rows_match_rows_alone, tiny_recipe
from tiny import ARCHITECTURES, save_tiny_model, tiny_model, tiny_tokenizer
from transformers import Gemma2Config, Gemma3TextConfig, Lfm2Config, LlamaConfig

from ft_plugin import models
from ft_plugin.speed.packed_attention import (
    PACKED_ATTENTION,
    _per_bucket,
    _per_row,
    packed_segments,
    packing_problem,
    register_packed_attention,
)
from ft_plugin.train import train

LENGTHS = [5, 17, 3, 40, 9]  # rows longer and shorter than the tiny models' window of 8


def _rows() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, 250, (n,), generator=generator) for n in LENGTHS]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("boundaries", ["cu_seq_lens", "position_ids"])
@pytest.mark.slow
def test_each_packed_row_attends_only_to_itself(arch: str, boundaries: str) -> None:
    """With packing, each row's logits and gradients are those of the row run alone."""
    model = tiny_model(arch)
    rows = _rows()
    inputs = {
        "input_ids": torch.cat(rows)[None],
        "position_ids": torch.cat([torch.arange(len(r)) for r in rows])[None],
    }
    if boundaries == "cu_seq_lens":
        cu = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()], dtype=torch.int32)
        inputs.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu)
    model.set_attn_implementation(register_packed_attention())
    assert_packed_rows_match_rows_alone(model, rows, inputs)


@pytest.mark.parametrize("arch", ["mistral", "gemma3"])
def test_one_unpacked_row_keeps_its_sliding_window(arch: str) -> None:
    model = tiny_model(arch).eval()
    ids = torch.randint(0, 250, (2, 40), generator=torch.Generator().manual_seed(3))
    model.set_attn_implementation("eager")
    reference = model(input_ids=ids).logits
    model.set_attn_implementation(register_packed_attention())
    torch.testing.assert_close(model(input_ids=ids).logits, reference, atol=1e-5, rtol=1e-5)


def test_accelerator_buckets_keep_the_sliding_window() -> None:
    class Attention(torch.nn.Module):
        num_key_value_groups, is_causal = 2, True

    segments = packed_segments(torch.tensor([0, 5, 22, 25, 65]), None, 1, 65)
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(65, h, 8, generator=generator) for h in (4, 2, 2))
    windowed = _per_row(Attention(), q, k, v, segments, 0.0, None, 6)
    torch.testing.assert_close(
        _per_bucket(Attention(), q, k, v, segments, 0.0, None, 6), windowed, atol=1e-5, rtol=1e-5
    )
    assert not torch.allclose(_per_row(Attention(), q, k, v, segments, 0.0, None), windowed)


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a != "llama"])  # test_packing's
@pytest.mark.slow
def test_each_architecture_trains_lora_on_packed_rows(tmp_path: Path, arch: str) -> None:
    save_tiny_model(tmp_path / arch, arch=arch)
    loaded = tiny_recipe(tmp_path, "lora", base_model=tmp_path / arch, sample_packing="true",
                         max_steps=2, micro_batch_size=4)  # fmt: skip
    assert (
        models.packing_fallback(loaded.recipe, models.resolve_base_model(str(tmp_path / arch)))
        is None
    )
    result = train(loaded, str(tmp_path / "run"))
    assert result.metrics["packing"] == "rows, padding-free"
    assert result.metrics["rows_per_step"] == 4 and result.metrics["steps"] == 2
    assert torch.isfinite(torch.tensor(result.metrics["train_loss"]))
    assert (result.run_dir / "adapter_model.safetensors").is_file()


def test_models_packed_attention_cannot_serve() -> None:
    from transformers import Gemma2ForCausalLM, LlamaForCausalLM

    for arch in ARCHITECTURES:
        model = tiny_model(arch)
        assert packing_problem(model.config, type(model)) is None, arch
    capped = packing_problem(Gemma2Config(), Gemma2ForCausalLM)
    assert capped == "it caps attention logits (attn_logit_softcapping), which SDPA cannot"
    assert packing_problem(Gemma2Config(), Gemma2ForCausalLM, "flash_attention_2") is None
    hybrid = Lfm2Config(num_hidden_layers=2, full_attn_idxs=[1])
    assert packing_problem(hybrid, None, "flash_attention_2") == (
        "its conv layers are not causal attention and would carry one packed row into the next"
    )
    both_ways = Gemma3TextConfig(use_bidirectional_attention=True)
    assert "attends in both directions" in packing_problem(both_ways)
    assert packing_problem(LlamaConfig(), LlamaForCausalLM, "sdpa") is None


def test_a_model_packing_cannot_serve_falls_back_with_one_line(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    folder = tmp_path / "gemma2"
    Gemma2Config(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, eos_token_id=257,
                 pad_token_id=258, bos_token_id=None).save_pretrained(folder)  # fmt: skip
    from transformers import Gemma2ForCausalLM

    torch.manual_seed(0)
    Gemma2ForCausalLM(Gemma2Config.from_pretrained(folder)).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    loaded = tiny_recipe(tmp_path, "lora", base_model=folder, sample_packing="true")
    base = models.resolve_base_model(str(folder))
    line = models.packing_fallback(loaded.recipe, base)
    assert line == (
        f"sample_packing: off for {folder} (gemma2): it caps attention logits "
        "(attn_logit_softcapping), which SDPA cannot; it trains on padded batches (the same "
        "rows per step)"
    )
    unpacked = loaded.recipe.model_copy(update={"sample_packing": False})
    assert models.packing_fallback(unpacked, base) is None
    # Loading it for packed rows anyway never fails: transformers' default attention, said so.
    model = models.load_model(loaded.recipe, base, dtype=torch.float32)
    assert model.config._attn_implementation != PACKED_ATTENTION
    assert f"attn_implementation: {PACKED_ATTENTION} cannot serve gemma2" in capfd.readouterr().err
    # Trained through the engine: packing off, padded batches, said once.
    from ft_plugin.train import train

    capfd.readouterr()
    result = train(tiny_recipe(tmp_path, "lora", base_model=folder, sample_packing="true",
                               max_steps=2), str(tmp_path / "run"))  # fmt: skip
    assert result.metrics["packing"].startswith("none") and result.metrics["steps"] == 2
    assert capfd.readouterr().err.count("sample_packing: off for") == 1
