"""Validate a merged recipe and report every problem of it at once, one line each.

pydantic's errors (unknown keys with a did-you-mean, wrong types, values out of range),
then what pydantic cannot know (registered methods and dataset types, contradictory keys,
stage overrides): all of them, each a :class:`RecipeError` naming file, line and key
path, raised together as :class:`RecipeErrors`.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from ft_plugin import registry
from ft_plugin.errors import RecipeError, RecipeErrors
from ft_plugin.hub import refs

from .schema import BUILTIN_DATASET_TYPES, Recipe
from .schema.datasets import PROMPT_STYLES, STYLED_TYPES, split_prompt_style
from .schema.preference import KTO_TYPES, PAIR_TYPES
from .yaml_source import Located, Origin


def closest(word: str, choices: Any) -> str | None:
    """The choice most similar to ``word``, if any is close enough to be a typo."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Any) -> str:
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match else ""


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the schema section at ``loc`` (for did-you-mean)."""
    model: type[BaseModel] = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        inner = _model_in(field.annotation)
        if inner is None:
            break
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        match = closest(loc[-1], _fields_at(loc[:-1]))
        return f"unknown key; did you mean {match!r}?" if match else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":  # our validators' messages name the value and the fix
        return str(error["ctx"]["error"])
    message = error["msg"][0].lower() + error["msg"][1:]
    if kind.startswith(("literal_error", "enum")):
        return f"{message} (got {error['input']!r})"
    if "input" in error and not isinstance(error["input"], dict | list):
        return f"{message} (got {error['input']!r})"
    return message


def _recipe_error(doc: Located, path: tuple[Any, ...], message: str, fallback: str) -> RecipeError:
    # pydantic reports tagged unions / nested list types with extra loc parts; keep real keys.
    key = ".".join(str(p) for p in path) or "recipe"
    origin = doc.origin_of(tuple(path)) or Origin(fallback)
    return RecipeError(f"{key}: {message}", file=origin.file, line=origin.line)


def validate(doc: Located, shown: str, found: list[RecipeError] | None = None) -> Recipe:
    """Validate merged YAML into a :class:`Recipe`, or raise :class:`RecipeErrors` with
    every problem (``found``: those an earlier step already collected), in file order."""
    errors = list(found or [])
    try:
        recipe = Recipe.model_validate(doc.data)
    except ValidationError as exc:
        errors += _pydantic_errors(doc, exc, (), shown)
        raise _all(errors) from None
    errors += _registry_errors(doc, recipe, shown)
    errors += [
        _recipe_error(doc, path, message, shown) for path, message in recipe.contradictions()
    ]
    errors += _stage_errors(doc, recipe, shown)
    if errors:
        raise _all(errors)
    return recipe


def _all(errors: list[RecipeError]) -> RecipeErrors:
    unique = list({str(e): e for e in errors}.values())
    return RecipeErrors(sorted(unique, key=lambda e: (e.file or "", e.line or 0)))


def _pydantic_errors(
    doc: Located, exc: ValidationError, at: tuple[Any, ...], shown: str
) -> list[RecipeError]:
    out = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
        out.append(_recipe_error(doc, (*at, *loc), _describe(error), shown))
    return out


def _registry_errors(doc: Located, recipe: Recipe, shown: str) -> list[RecipeError]:
    """Methods and dataset types are registered by name (plugins add more)."""
    out = []
    methods = registry.method_names()
    if recipe.adapter not in methods:
        message = (f"unknown method {recipe.adapter!r}{did_you_mean(recipe.adapter, methods)}; "
                   f"known: {', '.join(methods)}")  # fmt: skip
        out.append(_recipe_error(doc, ("adapter",), message, shown))
    for group in ("datasets", "test_datasets"):
        for index, entry in enumerate(getattr(recipe, group) or []):
            if not known_dataset_type(entry.type):
                known = [*BUILTIN_DATASET_TYPES, *registry.templates()]
                styled = [f"{kind}:{style}" for kind in STYLED_TYPES for style in PROMPT_STYLES]
                message = (
                    f"unknown dataset type {entry.type!r}"
                    f"{did_you_mean(entry.type, [*known, *styled])}; known: {', '.join(known)}, "
                    f"Axolotl's prompt styles {', '.join(styled)} (or a template .yaml path / "
                    "hf:// reference)"
                )
                out.append(_recipe_error(doc, (group, index, "type"), message, shown))
    return out


def _stage_errors(doc: Located, recipe: Recipe, shown: str) -> list[RecipeError]:
    """Each stage's (or task adapter's) recipe validates on its own."""
    out = []
    for group in ("stages", "adapters"):
        for index, entry in enumerate(getattr(recipe, group) or []):
            try:
                recipe.for_stage(index, group)
            except ValidationError as exc:
                for error in exc.errors():
                    loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
                    path = (group, index, *loc) if loc and loc[0] in entry.overrides() else loc
                    out.append(_recipe_error(doc, path, _describe(error), shown))
    return out


def known_dataset_type(kind: str) -> bool:
    """True for a row shape (with Axolotl's prompt style, `alpaca:chat`), a registered
    template name, or a template file reference."""
    if kind in (*PAIR_TYPES, *KTO_TYPES):  # preference rows (rl:)
        return True
    kind = split_prompt_style(kind)[0]
    return (
        kind in BUILTIN_DATASET_TYPES
        or kind in registry.templates()
        or refs.is_hub_ref(kind)
        or kind.endswith((".yaml", ".yml"))
    )
