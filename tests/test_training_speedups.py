"""The speed-ups measured in BENCHMARKS.md keep the training what it was."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_llama

from ft_plugin.speed.lora_layers import SharedInputDropout, speed_up_lora_layers


def test_dropout_keeps_the_expected_share_and_the_mean() -> None:
    torch.manual_seed(0)
    dropout = SharedInputDropout(0.1).train()
    x = torch.ones(1000, 1000)
    out = dropout(x)
    dropped = (out == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.002)
    assert out.mean().item() == pytest.approx(1.0, abs=0.005)  # inverted dropout: 1/(1-p) scale
    assert torch.unique(out).tolist() == [0.0, pytest.approx(1 / 0.9)]


def test_one_mask_per_input_shared_by_its_readers_and_none_in_eval() -> None:
    torch.manual_seed(0)
    q, k = SharedInputDropout(0.2).train(), SharedInputDropout(0.2).train()
    hidden = torch.randn(64, 32, requires_grad=True)
    assert torch.equal(q(hidden), k(hidden)), "q/k/v adapters reading one tensor share a mask"
    other = hidden.detach().clone()
    assert not torch.equal((q(other) == 0), (q(hidden) == 0))  # a new tensor, a new mask
    out = q(hidden)
    out.sum().backward()
    assert torch.equal(hidden.grad, (out != 0).float() / 0.8), "gradient = mask x scale"
    assert q.eval()(hidden) is hidden


def test_lora_layers_get_the_fast_dropout_and_keep_their_outputs() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        tiny_llama(), LoraConfig(target_modules=["q_proj", "v_proj"], lora_dropout=0.1)
    )
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids).logits
    assert speed_up_lora_layers(model, autocast_half=True) == 4  # 2 layers x 2 projections
    kinds = {type(m).__name__ for m in model.modules()}
    assert "SharedInputDropout" in kinds and "Dropout" not in kinds
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before)


def test_compact_lm_head_scoring_gives_the_same_loss_and_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TRL's fused head scoring only labelled positions (our CPU setting) vs every position."""
    import trl.trainer.utils as trl_utils
    from trl.kernels import chunked_logprob
    from trl.trainer.utils import add_fused_lm_head

    from ft_plugin.speed import trl_lm_head

    assert hasattr(trl_utils, "_use_triton"), (
        "TRL moved its compact-scoring switch: update speed/trl_lm_head.py"
    )
    ids = torch.randint(0, 250, (1, 400), generator=torch.Generator().manual_seed(3))
    labels = ids.clone()
    labels[0, :100] = -100  # only the answer carries loss: 299 scored positions, 3 tiles
    results = []
    for compact in (False, True):
        with monkeypatch.context() as patch:
            if compact:
                assert trl_lm_head.tune_fused_lm_head_for_cpu()
                assert trl_utils._use_triton(torch.device("cpu"))
                assert chunked_logprob.TOKEN_CHUNK_SIZE == trl_lm_head.CPU_TOKENS_PER_TILE
            else:  # TRL as shipped, whether or not an earlier test applied ours
                patch.setattr(trl_utils, "_use_triton", chunked_logprob._use_triton)
                patch.setattr(chunked_logprob, "TOKEN_CHUNK_SIZE", 4096)
            model = tiny_llama()
            add_fused_lm_head(model)
            loss = model(input_ids=ids, labels=labels, fused_lm_head=True).loss
            loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_full, grads_full), (loss_compact, grads_compact) = results
    torch.testing.assert_close(loss_compact, loss_full)
    for a, b in zip(grads_compact, grads_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
