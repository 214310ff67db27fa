"""Config stage: recipe schema, YAML loading, `extends:`, `--set` overrides, Hub refs."""

from .loader import LoadedRecipe, apply_overrides, load_recipe
from .schema import Recipe

__all__ = ["LoadedRecipe", "Recipe", "apply_overrides", "load_recipe"]
