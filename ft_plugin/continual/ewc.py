"""Elastic weight consolidation (Kirkpatrick et al., 2017) for any trainable parameters.

Fisher: the diagonal empirical Fisher of the trainable parameters on the previous
run's training rows, ``F_i = (1/N) Σ_n (∂ℓ_n/∂θ_i)²``, where ``ℓ_n`` is sample n's own
training loss (mean NLL over its answer tokens). Gradients are taken one sample at a
time: squaring a batch-mean gradient instead would underestimate F by about the batch
size, because cross-sample terms average out. The Fisher and the anchor weights θ*
are saved as ``fisher.safetensors`` (keys ``fisher.NAME`` and ``anchor.NAME``) next to
the adapter.

Penalty added to the loss of a later run: ``(λ/2) · Σ_i F_i · (θ_i − θ*_i)²`` over the
parameters present in both (adapter names match when the later run starts from the
earlier adapter with ``lora_model_dir``; full/freeze runs match by parameter name).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ft_plugin.errors import UserError

FISHER_FILE = "fisher.safetensors"


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def compute_fisher(
    model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher from per-sample gradients (one batch = one sample).

    Each batch holds ``input_ids`` and ``labels`` (-100 where no loss) of one row.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        fisher = compute_fisher(model, [{"input_ids": ids, "labels": labels}])
    """
    params = trainable_parameters(model)
    if not params:
        raise UserError("ewc: the model has no trainable parameters to protect")
    totals = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it is
    used = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        if not torch.isfinite(loss):
            continue  # a row without answer tokens has no gradient to add
        loss.backward()
        for name, p in params.items():
            if p.grad is not None:
                totals[name] += p.grad.detach().float() ** 2
        used += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if used == 0:
        raise UserError("ewc: no training row had answer tokens to compute the Fisher from")
    return {name: total / used for name, total in totals.items()}


def save_fisher(
    folder: Path, fisher: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor]
) -> Path:
    tensors = {f"fisher.{k}": v.contiguous() for k, v in fisher.items()}
    tensors.update({f"anchor.{k}": v.detach().float().contiguous() for k, v in anchors.items()})
    path = folder / FISHER_FILE
    staging = folder / f".{FISHER_FILE}.tmp"
    save_file(
        tensors, str(staging), metadata={"format": "ft-plugin-ewc", "samples_note": "per-sample"}
    )
    staging.replace(path)
    return path


def load_fisher(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    tensors = load_file(str(folder / FISHER_FILE))
    fisher = {k.removeprefix("fisher."): v for k, v in tensors.items() if k.startswith("fisher.")}
    anchors = {k.removeprefix("anchor."): v for k, v in tensors.items() if k.startswith("anchor.")}
    return fisher, anchors


class EwcPenalty(torch.nn.Module):
    """``(λ/2) Σ F (θ − θ*)²`` over the parameters the Fisher and the model share."""

    log_name = "ewc_penalty"  # how the engine's penalty mixin names it in the logs

    def __init__(
        self,
        model: torch.nn.Module,
        fisher: dict[str, torch.Tensor],
        anchors: dict[str, torch.Tensor],
        lam: float,
    ) -> None:
        super().__init__()
        params = trainable_parameters(model)
        self.names = sorted(set(params) & set(fisher))
        if not self.names:
            raise UserError(
                "ewc: none of the previous run's parameters are trainable here; start from its adapter "
                "with lora_model_dir (same method and target modules)"
            )
        self.lam = lam
        self._params = [params[n] for n in self.names]
        for i, name in enumerate(self.names):
            device = self._params[i].device
            self.register_buffer(f"fisher_{i}", fisher[name].to(device), persistent=False)
            self.register_buffer(f"anchor_{i}", anchors[name].to(device), persistent=False)

    def forward(self) -> torch.Tensor:
        total = torch.zeros((), device=self._params[0].device)
        for i, param in enumerate(self._params):
            diff = param.float() - getattr(self, f"anchor_{i}")
            total = total + (getattr(self, f"fisher_{i}") * diff * diff).sum()
        return 0.5 * self.lam * total
