"""Recipe schema, split by concern as in Axolotl (`schemas/model.py`, `peft.py`, …)."""

from .datasets import BUILTIN_DATASET_TYPES, DatasetSection
from .model import EMBEDDED_DEFAULT
from .recipe import Recipe

__all__ = ["BUILTIN_DATASET_TYPES", "EMBEDDED_DEFAULT", "DatasetSection", "Recipe"]
