"""The whole recipe: every section merged into one flat, strictly validated model.

Keys are flat at the top level, as in Axolotl (``lora_r``, not ``lora.r``); our own
extensions live under their own keys (``eval:``, ``hub:``, ``freeze:``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from .data_loading import DatasetsSection
from .evaluation import EvaluationSection
from .extensions import STAGE_KEYS, ExtensionsSection
from .federated import FederatedSection
from .hub import HubSection
from .model import ModelSection
from .peft import PeftSection
from .training import TrainingSection

QUANTIZED_ADAPTERS = ("lora", "qlora", "dora", "ia3")


class Recipe(
    ModelSection,
    PeftSection,
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
        if self.adapter == "qlora" and self.load_in_8bit:
            found.append(
                (
                    ("load_in_8bit",),
                    "adapter: qlora is 4-bit; it cannot be combined with load_in_8bit: true",
                )
            )
        quantized = (
            "load_in_4bit" if self.load_in_4bit else "load_in_8bit" if self.load_in_8bit else None
        )
        if quantized and self.adapter not in QUANTIZED_ADAPTERS:
            found.append(
                (
                    (quantized,),
                    f"{quantized} needs a PEFT adapter over the frozen quantized base "
                    f"({', '.join(QUANTIZED_ADAPTERS)}); adapter: {self.adapter} cannot train quantized weights",
                )
            )
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
        return found

    def for_stage(self, index: int, group: str = "stages") -> Recipe:
        """This recipe with entry ``index`` of `stages` (or `adapters`) applied, and no such list."""
        entry = (getattr(self, group) or [])[index]
        data = self.model_dump(by_alias=True, exclude={"stages", "adapters"})
        data.update(entry.overrides())
        return Recipe.model_validate(data)

    @model_validator(mode="after")
    def _qlora_implies_4bit(self) -> Recipe:
        # QLoRA means a 4-bit base by definition (Axolotl requires the key; we imply it).
        if self.adapter == "qlora" and not self.load_in_8bit and not self.load_in_4bit:
            object.__setattr__(self, "load_in_4bit", True)
        return self
