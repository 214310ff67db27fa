"""Task arithmetic on LoRA adapters: merge per-task adapters with PEFT's ``add_weighted_adapter``.

:func:`merge_adapters` validates its inputs, calls
:meth:`peft.tuners.lora.LoraModel.add_weighted_adapter`, repairs one known PEFT scaling bug
(below) and makes the new adapter the active one. What PEFT computes (read from
``peft/tuners/lora/model.py``, PEFT 0.21; ``s_i`` is adapter i's scaling ``lora_alpha / r``
or ``lora_alpha / sqrt(r)`` with rsLoRA, ``w_i`` its weight, ``ΔW_i = s_i · B_i @ A_i``):

* The merged adapter always gets ``r = lora_alpha = new_rank``, so its own scaling is 1: the
  source scalings are folded into the merged ``A``/``B`` matrices.
* ``cat`` — exact: ``A = concat_rows(w_i · s_i · A_i)``, ``B = concat_cols(B_i)``, so
  ``ΔW = Σ_i w_i · ΔW_i``; the rank is ``Σ_i r_i`` (ranks may differ).
* ``linear`` — *not* the weighted sum of the deltas: with ``c_i = sqrt(|w_i · s_i|)`` and
  ``σ_i = sign(w_i · s_i)``, ``A = Σ_i σ_i · c_i · A_i`` and ``B = Σ_i c_i · B_i``, so
  ``ΔW = (Σ_i c_i B_i) @ (Σ_j σ_j c_j A_j)``, which includes the cross terms ``B_i @ A_j``.
  It equals ``Σ_i w_i ΔW_i`` only when a single weight is non-zero (e.g. ``[1, 0]`` gives back
  the first adapter exactly). All ranks must be equal.
* ``ties`` / ``dare_linear`` / ``dare_ties`` / ``magnitude_prune`` — the same sqrt-weighting,
  but the A matrices and the B matrices are each merged with TIES (magnitude pruning to
  ``density``, sign election, disjoint mean), DARE (random drop with keep-probability
  ``density`` and rescaling by ``1/density``, then a weighted sum or TIES) or magnitude
  pruning. All ranks must be equal. DARE draws random masks: pass ``seed`` for a
  reproducible merge.
* ``svd`` (and ``ties_svd``, ``dare_linear_svd``, ``dare_ties_svd``, ``magnitude_prune_svd``)
  — combines the full deltas ``ΔW_i`` (``svd``: ``Σ_i w_i ΔW_i``; the others apply
  TIES/DARE/pruning to the full deltas) and truncates the result by SVD to ``svd_rank``
  (default: the largest source rank). Exact when ``svd_rank`` is at least the rank of the sum.
* With a single adapter PEFT always uses ``linear``, whatever ``combination_type`` says; this
  module refuses the pruning methods (which need two or more adapters) instead.

Known PEFT problems handled here (huggingface/peft#3449, #3761): the merged config is a copy
of the first adapter's, so ``use_rslora`` is inherited and the merged scaling becomes
``sqrt(new_rank)`` instead of 1. :func:`merge_adapters` resets ``use_rslora`` on the merged
config and the merged scaling to 1 (a no-op on PEFT versions that fix it). Adapters with
``lora_bias``, DoRA or another LoRA variant (KaSA, aLoRA, …) cannot be combined by
``add_weighted_adapter`` (their extra parameters are dropped or re-initialised) and are
refused with a ``ValueError``, as are non-LoRA adapters (IA3, bottleneck, AdaLoRA).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import UserError

if TYPE_CHECKING:
    from peft import PeftModel

#: Every ``combination_type`` PEFT's LoRA ``add_weighted_adapter`` accepts.
COMBINATION_TYPES: tuple[str, ...] = (
    "linear",
    "cat",
    "svd",
    "ties",
    "ties_svd",
    "dare_linear",
    "dare_ties",
    "dare_linear_svd",
    "dare_ties_svd",
    "magnitude_prune",
    "magnitude_prune_svd",
)
#: Methods that prune: they need ``density`` in (0, 1].
DENSITY_COMBINATIONS: frozenset[str] = frozenset(
    name for name in COMBINATION_TYPES if name.startswith(("ties", "dare", "magnitude_prune"))
)
#: Methods that need all adapters to have the same rank.
SAME_RANK_COMBINATIONS: frozenset[str] = frozenset(
    {"linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"}
)


class AdapterMergeError(UserError, ValueError):
    """Adapters that cannot be merged as asked (a ``ValueError`` the CLI reports in one line)."""


def _tuner(peft_model: Any) -> Any:
    """The LoRA tuner (``LoraModel``) behind a ``PeftModel``, or the tuner itself."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTuner

    if isinstance(peft_model, PeftModel):
        return peft_model.base_model
    if isinstance(peft_model, BaseTuner):
        return peft_model
    raise AdapterMergeError(
        f"merge_adapters needs a PEFT model (peft.PeftModel), got {type(peft_model).__name__}"
    )


def _rank(config: Any) -> int:
    """The largest rank an adapter uses (what PEFT allocates for it)."""
    return max(config.r, *config.rank_pattern.values()) if config.rank_pattern else config.r


def _check_lora(name: str, config: Any) -> None:
    """Refuse adapters that PEFT's ``add_weighted_adapter`` cannot combine correctly."""
    from peft import LoraConfig
    from peft.utils import PeftType

    peft_type = getattr(config, "peft_type", None)
    if peft_type != PeftType.LORA or not isinstance(config, LoraConfig):
        kind = getattr(peft_type, "value", peft_type)
        raise AdapterMergeError(
            f"adapter {name!r} is a {kind} adapter; merge_adapters combines LoRA adapters only "
            "(IA3, bottleneck and AdaLoRA adapters have no add_weighted_adapter with these "
            "combination types)"
        )
    if getattr(config, "lora_bias", False):
        raise AdapterMergeError(
            f"adapter {name!r} uses lora_bias=True; add_weighted_adapter drops the LoRA bias, "
            "so the merged adapter would be wrong"
        )
    for field in dataclasses.fields(config):
        value = getattr(config, field.name, None)
        if field.name == "init_lora_weights":
            variant = value if value in field.metadata.get("lora_variants", ()) else None
        else:
            variant = field.name if field.metadata.get("is_lora_variant") and value else None
        if variant:
            raise AdapterMergeError(
                f"adapter {name!r} uses the LoRA variant {variant!r} (e.g. DoRA's magnitude "
                "vector); add_weighted_adapter only combines lora_A/lora_B, so the merged "
                "adapter would be wrong"
            )


def merge_adapters(
    peft_model: PeftModel,
    adapters: list[str],
    weights: list[float],
    *,
    name: str,
    combination_type: str = "linear",
    density: float | None = None,
    svd_rank: int | None = None,
    seed: int | None = None,
) -> str:
    """Add ``name``, a weighted combination of LoRA ``adapters``, and make it the active adapter.

    ``weights`` has one (finite, possibly negative) weight per adapter. ``density`` (the
    fraction of values kept, in (0, 1]) is required by the pruning methods (``ties``,
    ``dare_*``, ``magnitude_prune*``) and refused by the others. ``svd_rank`` sets the rank
    of the ``*svd`` results. ``seed`` makes the random DARE masks reproducible (the global
    torch RNG is left untouched). See the module docstring for what each method computes.

    Raises ``ValueError`` (:class:`AdapterMergeError`) for unknown adapter names, an
    existing ``name``, mismatched ``weights``, a bad or missing ``density``, an unknown
    ``combination_type``, unequal ranks where they must match, and non-LoRA adapters.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        model = get_peft_model(base, LoraConfig(r=4), adapter_name="law")
        model.add_adapter("med", LoraConfig(r=4))
        merge_adapters(model, ["law", "med"], [0.5, 0.5], name="both",
                       combination_type="ties", density=0.5)  # 'both'
    """
    import torch

    tuner = _tuner(peft_model)
    configs = tuner.peft_config
    adapters = list(adapters)
    weights = list(weights)

    if not isinstance(name, str) or not name:
        raise AdapterMergeError("name must be a non-empty string")
    if name in configs:
        raise AdapterMergeError(
            f"an adapter named {name!r} already exists (PEFT would silently keep the old one); "
            "choose another name or delete it first"
        )
    if not adapters:
        raise AdapterMergeError("adapters is empty: give at least one adapter to merge")
    unknown = [adapter for adapter in adapters if adapter not in configs]
    if unknown:
        raise AdapterMergeError(f"unknown adapter(s) {unknown}; the model has {sorted(configs)}")
    if len(set(adapters)) != len(adapters):
        raise AdapterMergeError(f"adapters must not repeat: {adapters}")
    if len(weights) != len(adapters):
        raise AdapterMergeError(
            f"{len(weights)} weight(s) for {len(adapters)} adapter(s): give one weight per adapter"
        )
    if not all(isinstance(w, numbers.Real) and math.isfinite(w) for w in weights):
        raise AdapterMergeError(f"weights must be finite numbers, got {weights}")
    if combination_type not in COMBINATION_TYPES:
        raise AdapterMergeError(
            f"unsupported combination_type {combination_type!r}; "
            f"LoRA supports {', '.join(COMBINATION_TYPES)}"
        )
    for adapter in adapters:
        _check_lora(adapter, configs[adapter])

    if combination_type in DENSITY_COMBINATIONS:
        if density is None:
            raise AdapterMergeError(f"combination_type {combination_type!r} needs a density")
        if not (isinstance(density, numbers.Real) and 0.0 < density <= 1.0):
            raise AdapterMergeError(f"density must be in (0, 1], got {density!r}")
        if len(adapters) < 2:
            raise AdapterMergeError(
                f"combination_type {combination_type!r} needs at least two adapters "
                "(with one, PEFT silently falls back to 'linear')"
            )
    elif density is not None:
        raise AdapterMergeError(
            f"density is only used by {', '.join(sorted(DENSITY_COMBINATIONS))}, "
            f"not by {combination_type!r}"
        )

    ranks = {adapter: _rank(configs[adapter]) for adapter in adapters}
    if combination_type in SAME_RANK_COMBINATIONS and len(set(ranks.values())) > 1:
        raise AdapterMergeError(
            f"combination_type {combination_type!r} needs adapters of the same rank, got {ranks}; "
            "use 'cat' or 'svd' for different ranks"
        )
    if svd_rank is not None:
        if not combination_type.endswith("svd"):
            raise AdapterMergeError("svd_rank is only used by the *svd combination types")
        if not (isinstance(svd_rank, int) and svd_rank > 0):
            raise AdapterMergeError(f"svd_rank must be a positive integer, got {svd_rank!r}")

    with ExitStack() as stack:
        if seed is not None:
            devices = sorted(
                {p.device.index or 0 for p in tuner.parameters() if p.device.type == "cuda"}
            )
            stack.enter_context(torch.random.fork_rng(devices=devices))
            torch.manual_seed(seed)
        tuner.add_weighted_adapter(
            adapters=adapters,
            weights=[float(w) for w in weights],
            adapter_name=name,
            combination_type=combination_type,
            svd_rank=svd_rank,
            density=density,
        )

    _fix_merged_scaling(tuner, name)
    peft_model.set_adapter(name)
    return name


def _fix_merged_scaling(tuner: Any, name: str) -> None:
    """Give the merged adapter scaling 1, as PEFT intends (huggingface/peft#3449).

    PEFT folds the source scalings into the merged weights and sets ``lora_alpha = r``, but
    keeps ``use_rslora`` from the first adapter, which turns the scaling into ``sqrt(r)``.
    """
    from peft.tuners.lora import LoraLayer

    config = tuner.peft_config[name]
    if not config.use_rslora:
        return
    config.use_rslora = False  # so that a saved-and-reloaded adapter also gets alpha / r = 1
    for module in tuner.modules():
        if isinstance(module, LoraLayer) and name in module.scaling:
            module.scaling[name] = config.lora_alpha / config.r
