"""The whole recipe: every section merged into one flat, strictly validated model.

Keys are flat at the top level, as in Axolotl (``lora_r``, not ``lora.r``); our own
extensions live under their own keys (``eval:``, ``hub:``, ``freeze:``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .data_loading import DatasetsSection
from .evaluation import EvaluationSection
from .extensions import STAGE_KEYS, ExtensionsSection
from .federated import FederatedSection
from .hub import HubSection
from .model import ModelSection
from .peft import PeftSection
from .preference import PreferenceSection
from .training import TrainingSection


class Recipe(
    ModelSection,
    PeftSection,
    PreferenceSection,
    DatasetsSection,
    TrainingSection,
    EvaluationSection,
    HubSection,
    ExtensionsSection,
    FederatedSection,
):
    """A validated fine-tuning recipe.

    Example:
        >>> r = Recipe.model_validate({"datasets": [{"path": "builtin:medical", "type": "medical"}]})
        >>> r.adapter, r.base_model  # no adapter named: the full model trains, as in Axolotl
        ('full', 'embedded:smollm2-135m-instruct')
    """

    name: str | None = Field(None, description="Recipe name (defaults to the file name).")
    description: str | None = Field(None, description="One line saying what the recipe is for.")
    domain: str | None = Field(None, description="Domain label (medical, legal, finance, …).")

    def contradictions(self) -> list[tuple[tuple[str, ...], str]]:
        """Keys that contradict each other, as (key path to blame, message) pairs."""
        found: list[tuple[tuple[str, ...], str]] = []
        if self.load_in_4bit and self.load_in_8bit:
            found.append(
                (("load_in_8bit",), "load_in_4bit and load_in_8bit are mutually exclusive")
            )
        if method := self._method():  # a method answers for its own keys (methods/)
            found += method.recipe_problems(self)
        if self.fp16 and self.bf16 is True:
            found.append((("fp16",), "bf16 and fp16 are mutually exclusive"))
        if self.early_stopping_patience and not (self.val_set_size or self.test_datasets):
            found.append(
                (
                    ("early_stopping_patience",),
                    "needs an eval set: set val_set_size or test_datasets",
                )
            )
        if self.eval_steps and not (self.val_set_size or self.test_datasets):
            found.append((("eval_steps",), "needs an eval set: set val_set_size or test_datasets"))
        for group in ("stages", "adapters"):
            entries = getattr(self, group) or []
            for index, entry in enumerate(entries):
                for key in entry.overrides():
                    if key not in STAGE_KEYS:
                        allowed = ", ".join(STAGE_KEYS)
                        found.append(
                            ((group, index, key), f"cannot override {key} here; allowed: {allowed}")
                        )
            names = [entry.name for entry in entries]
            if len(set(names)) != len(names):
                found.append(((group,), "names must be unique"))
        if self.stages and self.adapters:
            found.append((("adapters",), "use stages or adapters, not both in one recipe"))
        if self.ewc and not (self.ewc.previous or self.lora_model_dir):
            found.append((("ewc",), "needs the run to protect: set ewc.previous or lora_model_dir"))
        found += self.training_contradictions()
        found += self.preference_contradictions()
        return found

    def for_stage(self, index: int, group: str = "stages") -> Recipe:
        """This recipe with entry ``index`` of `stages` (or `adapters`) applied, and no such list."""
        entry = (getattr(self, group) or [])[index]
        data = self.model_dump(by_alias=True, exclude={"stages", "adapters"})
        data.update(entry.overrides())
        return Recipe.model_validate(data)

    @model_validator(mode="after")
    def _method_implies_keys(self) -> Recipe:
        for key, value in (method.implied_keys(self) if (method := self._method()) else {}).items():
            object.__setattr__(self, key, value)
        return self

    def _method(self) -> Any | None:
        """The method `adapter` names, or None for a name no one registered (validation
        reports it with a suggestion)."""
        from ft_plugin import registry

        if self.adapter not in registry.method_names():
            return None
        return registry.load_method(self.adapter)
