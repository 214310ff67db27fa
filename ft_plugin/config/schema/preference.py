"""Preference tuning (`rl:`), with Axolotl's keys and meaning, on TRL's trainers.

`rl: dpo` and `ipo` train with TRL's DPOTrainer, `kto` with KTOTrainer, `orpo` with
ORPOTrainer and `simpo` with CPOTrainer (`loss_type: simpo`), as Axolotl's builder does.
A preference run reads pairs (prompt, chosen, rejected) or, for KTO, judged answers
(prompt, completion, label) in one of Axolotl's preference dataset types below.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from .base import Section

RL_METHODS = ("dpo", "ipo", "orpo", "kto", "simpo")
# Axolotl's other rl: values, each with why it is not here and what to write instead.
RL_REFUSED = {
    "grpo": "online RL (GRPO) generates answers and scores them with reward functions",
    "gdpo": "online RL (GDPO) generates answers and scores them with reward functions",
    "ebft": "Energy-Based Fine-Tuning",
}
# Axolotl's preference dataset types: FORMAT.VARIANT. `chatml` / `llama3` write that chat
# format's text as Axolotl does; `chat_template` renders with the model's (or the recipe's)
# chat template. Pair types feed dpo / ipo / orpo / simpo, KTO types feed kto.
PAIR_VARIANTS = ("default", "intel", "argilla", "icr", "prompt_pairs", "ultra", "argilla_chat")
KTO_VARIANTS = ("argilla", "argilla_chat", "intel", "prompt_pairs", "ultra")
PAIR_TYPES = (
    *(f"{fmt}.{variant}" for fmt in ("chatml", "llama3") for variant in PAIR_VARIANTS),
    "chat_template.default", "chat_template.argilla", "chat_template.argilla_chat",
)  # fmt: skip
KTO_TYPES = tuple(f"{fmt}.{variant}" for fmt in ("chatml", "llama3") for variant in KTO_VARIANTS)


def preference_types(rl: str) -> tuple[str, ...]:
    """The dataset types a run with ``rl`` reads: Axolotl's, and for pairs the domain
    templates too (their preference form: the template's prompt, `chosen` and `rejected`
    answers in its answer pattern).

    Example:
        >>> "chatml.intel" in preference_types("dpo"), "chatml.intel" in preference_types("kto")
        (True, True)
        >>> "medical" in preference_types("dpo"), "medical" in preference_types("kto")
        (True, False)
    """
    from ft_plugin import registry

    return KTO_TYPES if rl == "kto" else (*PAIR_TYPES, *registry.templates())


class PreferenceSection(Section):
    rl: str | None = Field(
        None,
        description="Preference tuning on TRL's trainers: `dpo`, `ipo` (DPO with the IPO "
        "loss), `orpo`, `kto` or `simpo` (CPO with the SimPO loss). Empty: supervised "
        "fine-tuning. The datasets are then preference pairs (or, for kto, judged answers).",
    )
    rl_beta: float | None = Field(
        None, gt=0, description="The preference loss's beta (TRL's default 0.1; ORPO's is "
        "`orpo_alpha`)."
    )  # fmt: skip
    dpo_loss_type: list[str] | None = Field(
        None, min_length=1, description="TRL's DPO `loss_type` (e.g. [sigmoid], [hinge])."
    )
    dpo_loss_weights: list[float] | None = Field(
        None, min_length=1, description="Weights of several `dpo_loss_type` losses."
    )
    dpo_label_smoothing: float | None = Field(
        None, ge=0, lt=0.5, description="Robust DPO's label-flip probability (dpo only)."
    )
    dpo_use_weighting: bool | None = Field(None, description="WPO weighting of the pairs.")
    dpo_ld_alpha: float | None = Field(
        None, ge=0, le=1, description="LD-DPO's weight of the verbose tail of an answer."
    )
    dpo_padding_free: bool | None = Field(
        None, description="TRL's padding-free DPO batches (TRL falls back to padding today)."
    )
    precompute_ref_log_probs: bool | None = Field(
        None, description="Score the reference once before training instead of every step."
    )
    orpo_alpha: float | None = Field(
        None, gt=0, description="ORPO's weight of the odds-ratio term (TRL's beta)."
    )
    kto_desirable_weight: float | None = Field(
        None, gt=0, description="KTO's weight of the desirable answers' loss (default 1)."
    )
    kto_undesirable_weight: float | None = Field(
        None, gt=0, description="KTO's weight of the undesirable answers' loss (default 1)."
    )
    simpo_gamma: float | None = Field(
        None, description="SimPO's target reward margin (TRL's default 0.5)."
    )
    cpo_alpha: float | None = Field(
        None, ge=0, description="SimPO / CPO: weight of the NLL term on the chosen answers."
    )
    rl_adapter_ref_model: bool | None = Field(
        None,
        description="Accepted as in Axolotl; the reference of an adapter run is always the "
        "adapter as the run starts (the base, or `lora_model_dir`), with no second model.",
    )

    @field_validator("rl", mode="before")
    @classmethod
    def _known_rl(cls, value: Any) -> Any:
        if value in (None, "") or value in RL_METHODS:
            return value or None
        why = RL_REFUSED.get(str(value))
        known = ", ".join(RL_METHODS)
        if why:
            raise ValueError(f"{value}: {why} is not supported; use one of {known}")
        raise ValueError(f"unknown preference method {value!r}; use one of {known}")

    def preference_contradictions(self) -> list[tuple[tuple[str, ...], str]]:
        """Preference keys that contradict `rl:` or the datasets, as (key path, why)."""
        found: list[tuple[tuple[str, ...], str]] = []
        if self.rl is None:
            given = [k for k in _RL_ONLY if getattr(self, k) is not None]
            found += [((key,), "is read only with rl: (dpo, ipo, orpo, kto, simpo); set rl: "
                       "or remove it") for key in given]  # fmt: skip
            for group in ("datasets", "test_datasets"):
                for index, entry in enumerate(getattr(self, group, None) or []):
                    if entry.type in (*PAIR_TYPES, *KTO_TYPES):
                        found.append(((group, index, "type"), f"{entry.type} is a preference "
                                      "dataset type: set rl: dpo (or ipo, orpo, simpo; kto for "
                                      "its KTO types) to train on it"))  # fmt: skip
            return found
        if self.rl != "dpo" and self.dpo_label_smoothing:
            found.append((("dpo_label_smoothing",), f"applies to rl: dpo only, not {self.rl}"))
        wanted = preference_types(self.rl)
        for group in ("datasets", "test_datasets"):
            for index, entry in enumerate(getattr(self, group, None) or []):
                if entry.type not in wanted:
                    found.append(((group, index, "type"), _type_advice(self.rl, entry.type)))
        return found


_RL_ONLY = ("rl_beta", "dpo_loss_type", "dpo_loss_weights", "dpo_label_smoothing",
            "dpo_use_weighting", "dpo_ld_alpha", "orpo_alpha", "kto_desirable_weight",
            "kto_undesirable_weight", "simpo_gamma", "cpo_alpha")  # fmt: skip


def _type_advice(rl: str, given: str) -> str:
    if rl == "kto":
        return (f"{given} is not a KTO dataset type; rl: kto reads prompt / completion / "
                f"label rows: use one of {', '.join(KTO_TYPES)}")  # fmt: skip
    return (f"{given} is not a preference dataset type; rl: {rl} reads pairs: use one of "
            f"{', '.join(PAIR_TYPES)}, or a domain template (its prompt, with `chosen` and "
            "`rejected` columns)")  # fmt: skip
