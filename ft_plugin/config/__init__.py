"""Config stage: recipe schema, YAML loading, `extends:`, `--set` overrides, Hub refs."""

from .loader import LoadedRecipe, apply_overrides, load_recipe, parse_set_options
from .schema import Recipe
from .trust import remote_code_notice

__all__ = [
    "LoadedRecipe",
    "Recipe",
    "apply_overrides",
    "load_recipe",
    "parse_set_options",
    "remote_code_notice",
]
