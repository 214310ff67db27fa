"""Packing whose cost is linear in the rows, and the same training as without packing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import assert_packed_rows_match_rows_alone, tiny_recipe
from tiny import tiny_llama

from ft_plugin.speed.packed_attention import (
    PACKED_ATTENTION,
    _per_bucket,
    _per_row,
    packed_segments,
    register_packed_attention,
)
from ft_plugin.train import train

LENGTHS = [5, 17, 3, 40, 9]


def _rows(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 250, (n,), generator=generator) for n in LENGTHS]


def _packed_inputs(rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """What TRL's padding-free collator hands the model: one flat row and its boundaries."""
    cu = torch.tensor([0, *torch.tensor([len(r) for r in rows]).cumsum(0).tolist()])
    return {
        "input_ids": torch.cat(rows)[None],
        "position_ids": torch.cat([torch.arange(len(r)) for r in rows])[None],
        "cu_seq_lens_q": cu.to(torch.int32),
        "cu_seq_lens_k": cu.to(torch.int32),
    }


@pytest.mark.parametrize("boundaries", ["cu_seq_lens", "position_ids"])
def test_packed_rows_give_the_logits_and_gradients_of_rows_alone(boundaries: str) -> None:
    model = tiny_llama()
    model.set_attn_implementation(register_packed_attention())
    rows = _rows()
    inputs = _packed_inputs(rows)
    if boundaries == "position_ids":
        inputs = {k: inputs[k] for k in ("input_ids", "position_ids")}
    assert_packed_rows_match_rows_alone(model, rows, inputs)


def test_accelerator_buckets_equal_the_cpu_per_row_path() -> None:
    """The GPU path (rows padded into power-of-two buckets), run here on CPU tensors."""

    class Attention(torch.nn.Module):
        num_key_value_groups, is_causal = 2, True

    segments = packed_segments(torch.tensor([0, 5, 22, 25, 65]), None, 1, 65)
    assert segments == [(0, 5), (5, 17), (22, 3), (25, 40)]
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(65, h, 8, generator=generator, requires_grad=True) for h in (4, 2, 2))
    per_row = _per_row(Attention(), q, k, v, segments, 0.0, None)
    per_bucket = _per_bucket(Attention(), q, k, v, segments, 0.0, None)
    torch.testing.assert_close(per_bucket, per_row, atol=1e-5, rtol=1e-5)
    grads_row = torch.autograd.grad(per_row.square().sum(), [q, k, v])
    grads_bucket = torch.autograd.grad(per_bucket.square().sum(), [q, k, v])
    for a, b in zip(grads_bucket, grads_row, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_two_dimensional_packed_rows_and_unpacked_inputs() -> None:
    assert packed_segments(None, torch.tensor([[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]]), 2, 5) == [
        (0, 3), (3, 2), (5, 2), (7, 3),
    ]  # fmt: skip
    assert packed_segments(None, torch.arange(6)[None], 1, 6) is None  # one row, not packed
    assert packed_segments(None, torch.tensor([[3, 4, 5, 0, 1]]), 1, 5) is None  # a cache offset


def test_padded_batches_and_generation_are_unchanged() -> None:
    model = tiny_llama().eval()
    ids = torch.randint(0, 250, (2, 10), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    reference = model(input_ids=ids, attention_mask=mask).logits
    expected = model.generate(ids[:1], max_new_tokens=5, do_sample=False)
    model.set_attn_implementation(register_packed_attention())
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, reference)
    assert torch.equal(model.generate(ids[:1], max_new_tokens=5, do_sample=False), expected)


def _losses(run: Path) -> list[float]:
    state = json.loads((run / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


@pytest.mark.slow
def test_packing_rows_is_the_same_training_as_padded_batches(tmp_path: Path) -> None:
    """Same rows per step, same losses: packing changes the cost, not the run."""
    common = {"micro_batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 3,
              "lora_dropout": 0.0}  # fmt: skip
    padded = train(
        tiny_recipe(tmp_path, "lora", sample_packing="false", **common), str(tmp_path / "a")
    )
    packed = train(
        tiny_recipe(tmp_path, "lora", sample_packing="true", **common), str(tmp_path / "b")
    )
    assert packed.metrics["packing"] == "rows, padding-free"
    assert packed.metrics["rows_per_step"] == padded.metrics["rows_per_step"] == 8
    assert packed.metrics["tokens_per_step"] == padded.metrics["tokens_per_step"]
    assert packed.metrics["train_tokens"] == padded.metrics["train_tokens"] > 0
    assert _losses(packed.run_dir) == pytest.approx(_losses(padded.run_dir), rel=1e-4)


def test_bins_fill_each_micro_batch_up_to_sequence_len(tmp_path: Path) -> None:
    result = train(
        tiny_recipe(
            tmp_path,
            "lora",
            sample_packing="bins",
            micro_batch_size=1,
            max_steps=3,
            sequence_len=256,
        ),  # fmt: skip
        str(tmp_path / "run"),
    )
    metrics = result.metrics
    assert metrics["packing"] == "bins of 256 tokens"
    assert metrics["rows_per_step"] > 1  # several rows share one bin
    assert metrics["tokens_per_step"] <= 256
    assert metrics["train_tokens"] == pytest.approx(metrics["tokens_per_step"] * 3, abs=1)


def test_packing_picks_the_per_row_attention(tmp_path: Path) -> None:
    from ft_plugin.models import choose_attention

    assert (
        choose_attention(tiny_recipe(tmp_path, "lora", sample_packing="true").recipe)
        == PACKED_ATTENTION
    )
    assert choose_attention(tiny_recipe(tmp_path, "lora").recipe) is None
    forced = tiny_recipe(tmp_path, "lora", sample_packing="true", attn_implementation="eager")
    assert choose_attention(forced.recipe) == "eager"
