"""Config stage: recipe schema, YAML loading, `extends:`, `--set` overrides, Hub refs."""

from .loader import LoadedRecipe, apply_overrides, apply_values, load_recipe
from .schema import Recipe
from .trust import remote_code_notice

__all__ = [
    "LoadedRecipe",
    "Recipe",
    "apply_overrides",
    "apply_values",
    "load_recipe",
    "remote_code_notice",
]
