"""Preference tuning (`rl:`) on TRL's own trainers, as Axolotl's builder maps its keys:
dpo / ipo on DPOTrainer, kto on KTOTrainer, orpo on ORPOTrainer, simpo on CPOTrainer."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sft_config import Precision, checked_config, training_arguments

if TYPE_CHECKING:
    from ft_plugin.config import Recipe

# rl: -> (module, trainer class, config class); ORPO and CPO live in TRL's experimental tree.
TRAINERS = {
    "dpo": ("trl", "DPOTrainer", "DPOConfig"),
    "ipo": ("trl", "DPOTrainer", "DPOConfig"),
    "kto": ("trl", "KTOTrainer", "KTOConfig"),
    "orpo": ("trl.experimental.orpo", "ORPOTrainer", "ORPOConfig"),
    "simpo": ("trl.experimental.cpo", "CPOTrainer", "CPOConfig"),
}
# Methods that score against a reference model (ORPO and SimPO need none).
NEEDS_REFERENCE = ("dpo", "ipo", "kto")
# DPOTrainer collates a pair's chosen and rejected answers as two rows of one batch.
STACKED_PAIRS = ("dpo", "ipo")


def trainer_classes(rl: str) -> tuple[type, type]:
    """(trainer, config) classes of TRL for ``rl``."""
    import warnings

    module_name, trainer, config = TRAINERS[rl]
    with warnings.catch_warnings():  # TRL's experimental tree warns on import; we pin TRL
        warnings.simplefilter("ignore")
        module = importlib.import_module(module_name)
    return getattr(module, trainer), getattr(module, config)


def preference_arguments(recipe: Recipe) -> dict[str, Any]:
    """The `rl:` keys as TRL's config fields (Axolotl's rl builder and DPOStrategy).

    Example:
        >>> from ft_plugin.config import Recipe
        >>> r = Recipe.model_validate({"rl": "ipo", "rl_beta": 0.2, "sequence_len": 512,
        ...     "datasets": [{"path": "p.jsonl", "type": "chatml.intel"}]})
        >>> preference_arguments(r)
        {'max_length': 512, 'beta': 0.2, 'loss_type': ['ipo']}
    """
    rl = recipe.rl
    kwargs: dict[str, Any] = {"max_length": recipe.sequence_len}
    beta = recipe.rl_beta if recipe.rl_beta is not None else recipe.orpo_alpha
    if beta is not None:
        kwargs["beta"] = beta
    if rl == "ipo":
        kwargs["loss_type"] = ["ipo"]
    elif rl == "dpo":
        optional = {"loss_type": recipe.dpo_loss_type, "loss_weights": recipe.dpo_loss_weights,
                    "label_smoothing": recipe.dpo_label_smoothing}  # fmt: skip
        kwargs.update({k: v for k, v in optional.items() if v is not None})
    if rl in ("dpo", "ipo"):
        optional = {"use_weighting": recipe.dpo_use_weighting, "ld_alpha": recipe.dpo_ld_alpha,
                    "padding_free": recipe.dpo_padding_free,
                    "precompute_ref_log_probs": recipe.precompute_ref_log_probs}  # fmt: skip
        kwargs.update({k: v for k, v in optional.items() if v is not None})
    elif rl == "kto":
        # KTO's KL term pairs each answer with its batch neighbours in a fixed order: the
        # rows are shuffled once, with the seed, when they are built (data/preferences.py).
        kwargs["train_sampling_strategy"] = "sequential"
        kwargs["desirable_weight"] = recipe.kto_desirable_weight or 1.0
        kwargs["undesirable_weight"] = recipe.kto_undesirable_weight or 1.0
        if recipe.precompute_ref_log_probs is not None:
            kwargs["precompute_ref_log_probs"] = recipe.precompute_ref_log_probs
    elif rl == "simpo":
        kwargs["loss_type"] = "simpo"
        if recipe.simpo_gamma is not None:
            kwargs["simpo_gamma"] = recipe.simpo_gamma
        if recipe.cpo_alpha is not None:
            kwargs["cpo_alpha"] = recipe.cpo_alpha
    return kwargs


def build_preference_config(
    recipe: Recipe,
    run_dir: Path,
    *,
    precision: Precision,
    gradient_checkpointing: bool,
    has_eval: bool,
) -> Any:
    """TRL's config for the recipe's `rl:` trainer: the run's shared training arguments
    plus the preference keys."""
    _, config_class = trainer_classes(recipe.rl)
    kwargs = training_arguments(recipe, run_dir, precision=precision,
                                gradient_checkpointing=gradient_checkpointing, has_eval=has_eval)  # fmt: skip
    kwargs.update(preference_arguments(recipe), remove_unused_columns=False)
    return checked_config(config_class, kwargs)


def reference_model(recipe: Recipe, model: Any) -> Any | None:
    """The frozen reference a full-weight run scores against: a copy of the model as the
    run starts. An adapter run passes none: TRL keeps the starting adapter as a frozen
    second adapter of the same model (the base for a new adapter, the SFT adapter with
    `lora_model_dir`); ORPO and SimPO need no reference."""
    if recipe.rl not in NEEDS_REFERENCE or hasattr(model, "peft_config"):
        return None
    if recipe.precompute_ref_log_probs:
        return None  # TRL scores the reference once before training, from this model
    reference = copy.deepcopy(model).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


REWARD_KEYS = {"rewards/chosen": "chosen", "rewards/rejected": "rejected",
               "rewards/margins": "margin", "rewards/accuracies": "accuracy"}  # fmt: skip


def reward_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The rewards TRL logged last, in training and on the eval pairs, for metrics.json:
    ``{"train": {"chosen", "rejected", "margin", "accuracy"}, "eval": {…}}`` (the keys the
    trainer logs; KTO logs no accuracy).

    Example:
        >>> reward_metrics([{"rewards/chosen": 0.2, "rewards/rejected": -0.1, "step": 1},
        ...                 {"eval_rewards/margins": 0.4, "step": 1}])
        {'train': {'chosen': 0.2, 'rejected': -0.1}, 'eval': {'margin': 0.4}}
    """
    out: dict[str, Any] = {}
    for split, prefix in (("train", ""), ("eval", "eval_")):
        logged = [h for h in history if any(prefix + k in h for k in REWARD_KEYS)]
        if logged:
            last = logged[-1]
            out[split] = {name: round(float(last[prefix + key]), 6)
                          for key, name in REWARD_KEYS.items() if prefix + key in last}  # fmt: skip
    return out


def drop_reference_adapter(model: Any) -> None:
    """Remove the frozen copy of the starting adapter TRL's DPO / KTO trainers add as
    ``ref``: the run directory holds the trained adapter only."""
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")


def match_trl_dropout(model: Any, args: Any) -> None:
    """TRL's preference trainers turn dropout off (``disable_dropout``, default on) so that
    the policy and its reference score alike; they reach ``nn.Dropout`` only, so the
    engine's shared LoRA dropout (``speed.lora_layers``) is turned off here too."""
    from ft_plugin.speed.lora_layers import SharedInputDropout

    if getattr(args, "disable_dropout", False):
        for module in model.modules():
            if isinstance(module, SharedInputDropout):
                module.p = 0.0
