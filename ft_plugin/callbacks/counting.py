"""Rows and tokens each optimizer step really saw, counted from the batches themselves.

Packing changes how many rows a step holds; the run summary and ``metrics.json`` say it
from these counts rather than from TRL's private counters.
"""

from __future__ import annotations

from typing import Any


def batch_rows_and_tokens(inputs: dict[str, Any]) -> tuple[int, int]:
    """(rows, non-padding input tokens) of one collated micro-batch.

    Padding-free batches are one flattened row whose ``position_ids`` restart at 0 for
    each packed example; padded batches carry an ``attention_mask``.

    Example:
        >>> import torch
        >>> batch_rows_and_tokens({"input_ids": torch.ones(1, 5), "position_ids": torch.tensor([[0, 1, 2, 0, 1]])})
        (2, 5)
        >>> batch_rows_and_tokens({"input_ids": torch.ones(2, 3), "attention_mask": torch.tensor([[1, 1, 1], [1, 0, 0]])})
        (2, 4)
    """
    if "attention_mask" in inputs:
        mask = inputs["attention_mask"]
        return int(mask.shape[0]), int(mask.sum())
    if "chosen_attention_mask" in inputs:  # ORPO / CPO pairs: each answer holds its prompt
        chosen, rejected = inputs["chosen_attention_mask"], inputs["rejected_attention_mask"]
        return int(chosen.shape[0]), int(chosen.sum()) + int(rejected.sum())
    positions = inputs["position_ids"]
    return int((positions == 0).sum()), int(positions.numel())


class CountingTrainerMixin:
    """Mixed in before a ``transformers.Trainer``: counts rows and tokens trained on."""

    rows_seen: int = 0
    tokens_seen: int = 0
    #: Collated rows per training example: 2 where a trainer stacks a pair's chosen and
    #: rejected answers as two rows (TRL's DPOTrainer), so that rows count pairs.
    rows_per_example: int = 1

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        rows, tokens = batch_rows_and_tokens(inputs)
        self.rows_seen += rows // self.rows_per_example
        self.tokens_seen += tokens
        return super().training_step(model, inputs, *args, **kwargs)  # type: ignore[misc]

    def counts_across_processes(self) -> tuple[int, int]:
        """(rows, tokens) summed over every process of a distributed run."""
        import torch

        accelerator = self.accelerator  # type: ignore[attr-defined]
        local = torch.tensor([self.rows_seen, self.tokens_seen], device=accelerator.device)
        total = (
            accelerator.reduce(local, reduction="sum") if accelerator.num_processes > 1 else local
        )
        return int(total[0]), int(total[1])
