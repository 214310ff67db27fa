"""Turn a recipe reference into a validated :class:`Recipe`.

Steps: resolve the reference (builtin name, path or ``hf://``), follow ``extends:``
(deep merge, child wins, cycles refused), apply ``--set`` overrides, validate with
pydantic, then check what pydantic cannot know (registered methods and templates,
contradictory keys). Every failure is a :class:`RecipeError` naming file, line and key.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ft_plugin import refs, registry
from ft_plugin.errors import RecipeError, UserError

from .schema import BUILTIN_DATASET_TYPES, Recipe
from .yaml_source import KeyPath, Located, Origin, read_yaml

SET_ORIGIN = "--set"


@dataclass
class LoadedRecipe:
    """A validated recipe, where it came from, and the merged YAML it was built from."""

    recipe: Recipe
    name: str
    source: str
    located: Located

    def to_yaml(self) -> str:
        """The fully resolved recipe (extends and overrides applied) as YAML."""
        data = self.recipe.model_dump(mode="json", exclude_none=True)
        data["name"] = self.name
        # Sections in reading order (metadata, model, method, data, training, eval, hub).
        order = ["name", "description", "domain"]
        for section in Recipe.__mro__[1:]:
            if isinstance(section, type) and issubclass(section, BaseModel):
                order += [f for f in getattr(section, "__annotations__", {}) if f not in order]
        ordered = {k: data[k] for k in order if k in data}
        ordered.update({k: v for k, v in data.items() if k not in ordered})
        return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class _Source:
    """Where a recipe file is: a local path or a Hub reference, plus its display name."""

    shown: str
    local: Path
    hub: refs.HubRef | None = None

    def resolve(self, reference: str) -> _Source:
        """Resolve an `extends:` value written inside this file."""
        if refs.is_hub_ref(reference) or reference in registry.recipes():
            return resolve_source(reference)
        if self.hub is not None:
            ref = self.hub.sibling(reference)
            return _Source(str(ref), refs.download(ref), ref)
        return resolve_source(str(self.local.parent / reference), must_exist=False)


def resolve_source(reference: str, *, must_exist: bool = True) -> _Source:
    """Find a recipe by builtin/plugin name, local path, or ``hf://`` reference."""
    if refs.is_hub_ref(reference):
        ref = refs.parse_hub_ref(reference)
        return _Source(reference, refs.download(ref), ref)
    known = registry.recipes()
    path = Path(reference)
    if path.suffix in (".yaml", ".yml") or path.exists() or not must_exist:
        return _Source(reference, path)
    if reference in known:
        return _Source(reference, known[reference].path)
    hint = _did_you_mean(reference, known)
    raise RecipeError(f"no recipe file or builtin recipe named {reference!r}{hint}", file=reference)


def closest(word: str, choices: Any) -> str | None:
    """The choice most similar to ``word``, if any is close enough to be a typo."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def _did_you_mean(word: str, choices: Any) -> str:
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match else ""


def _merge(base: Located, child: Located) -> Located:
    """Deep-merge ``child`` over ``base``: mappings merge key by key, anything else is replaced."""
    data = copy.deepcopy(base.data)
    origins = {k: v for k, v in base.origins.items() if k}

    def walk(target: dict[str, Any], incoming: dict[str, Any], prefix: KeyPath) -> None:
        for key, value in incoming.items():
            path = (*prefix, key)
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                walk(target[key], value, path)
                origins[path] = child.origins.get(path, origins.get(path))
                continue
            target[key] = copy.deepcopy(value)
            for stale in [p for p in origins if p[: len(path)] == path]:
                del origins[stale]
            origins.update({p: o for p, o in child.origins.items() if p[: len(path)] == path})

    walk(data, child.data, ())
    return Located(data, origins)


def _load_with_parents(source: _Source, chain: tuple[_Source, ...]) -> Located:
    doc = read_yaml(source.local, source.shown)
    parents = doc.data.pop("extends", None)
    if parents is None:
        return doc
    line = doc.origins[("extends",)].line
    doc.origins = {k: v for k, v in doc.origins.items() if k[:1] != ("extends",)}
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise RecipeError(
            "extends: must be a recipe name, path or hf:// reference (or a list)",
            file=source.shown,
            line=line,
        )
    merged = Located({}, {})
    for parent in parents:
        try:
            parent_source = source.resolve(parent)
            if not parent_source.local.exists():
                raise RecipeError(
                    f"extends: parent recipe {parent!r} not found", file=source.shown, line=line
                )
        except UserError as exc:
            if isinstance(exc, RecipeError) and exc.file == source.shown:
                raise
            raise RecipeError(f"extends: {exc}", file=source.shown, line=line) from None
        seen = (*chain, source)
        if any(parent_source.local.resolve() == s.local.resolve() for s in seen):
            cycle = " -> ".join(s.shown for s in (*seen, parent_source))
            raise RecipeError(f"extends: cycle {cycle}", file=source.shown, line=line)
        merged = _merge(merged, _load_with_parents(parent_source, seen))
    return _merge(merged, doc)


def apply_overrides(doc: Located, overrides: list[str]) -> Located:
    """Apply ``KEY=VALUE`` overrides; dotted keys reach into mappings and lists.

    Values are parsed as YAML scalars (``8`` is an int, ``false`` a bool, ``[a, b]`` a list).

    Example:
        >>> apply_overrides(Located({"hub": {"private": True}}), ["hub.private=false"]).data
        {'hub': {'private': False}}
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"{item!r}: expected KEY=VALUE", file=SET_ORIGIN)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
        target: Any = doc.data
        for depth, part in enumerate(parts[:-1]):
            nxt = target[part] if _has(target, part) else None
            if nxt is None:
                if isinstance(part, int):
                    raise RecipeError(
                        f"{'.'.join(map(str, parts[: depth + 1]))}: no such list item",
                        file=SET_ORIGIN,
                    )
                nxt = target[part] = {}
            target = nxt
        last = parts[-1]
        if isinstance(target, list) and (not isinstance(last, int) or last >= len(target)):
            raise RecipeError(f"{key}: no such list item", file=SET_ORIGIN)
        target[last] = value
        path = tuple(parts)
        for stale in [p for p in doc.origins if p[: len(path)] == path]:
            del doc.origins[stale]
        doc.origins[path] = Origin(SET_ORIGIN)
    return doc


def _has(container: Any, key: str | int) -> bool:
    if isinstance(container, list):
        return isinstance(key, int) and key < len(container)
    return isinstance(container, dict) and key in container


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


def validate(doc: Located, shown: str) -> Recipe:
    """Validate merged YAML into a :class:`Recipe`, or raise the first error, located."""
    try:
        recipe = Recipe.model_validate(doc.data)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = tuple(p for p in error["loc"] if isinstance(p, str | int))
        raise _recipe_error(doc, path, _describe(error), shown) from None
    methods = registry.method_names()
    if recipe.adapter not in methods:
        raise _recipe_error(
            doc,
            ("adapter",),
            f"unknown method {recipe.adapter!r}{_did_you_mean(recipe.adapter, methods)}; "
            f"known: {', '.join(methods)}",
            shown,
        )
    for group in ("datasets", "test_datasets"):
        for index, entry in enumerate(getattr(recipe, group) or []):
            if not known_dataset_type(entry.type):
                known = [*BUILTIN_DATASET_TYPES, *registry.templates()]
                raise _recipe_error(
                    doc,
                    (group, index, "type"),
                    f"unknown dataset type {entry.type!r}{_did_you_mean(entry.type, known)}; "
                    f"known: {', '.join(known)} (or a template .yaml path / hf:// reference)",
                    shown,
                )
    for path, message in recipe.contradictions():
        raise _recipe_error(doc, path, message, shown)
    for group in ("stages", "adapters"):
        for index, entry in enumerate(getattr(recipe, group) or []):
            try:
                recipe.for_stage(index, group)
            except ValidationError as exc:
                error = exc.errors()[0]
                loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
                path = (group, index, *loc) if loc and loc[0] in entry.overrides() else loc
                raise _recipe_error(doc, path, _describe(error), shown) from None
    return recipe


def known_dataset_type(kind: str) -> bool:
    """True for a row shape, a registered template name, or a template file reference."""
    return (
        kind in BUILTIN_DATASET_TYPES
        or kind in registry.templates()
        or refs.is_hub_ref(kind)
        or kind.endswith((".yaml", ".yml"))
    )


def load_recipe(reference: str, overrides: list[str] | None = None) -> LoadedRecipe:
    """Load, compose, override and validate a recipe.

    Example:
        >>> loaded = load_recipe("medical-lora", ["lora_r=4"])
        >>> loaded.recipe.lora_r, loaded.name
        (4, 'medical-lora')
    """
    source = resolve_source(reference)
    doc = _load_with_parents(source, ())
    doc = apply_overrides(doc, list(overrides or []))
    recipe = validate(doc, source.shown)
    name = recipe.name or Path(source.hub.path if source.hub else source.local).stem
    return LoadedRecipe(recipe, name, source.shown, doc)
