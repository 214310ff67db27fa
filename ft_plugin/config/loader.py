"""Turn a recipe reference into a validated :class:`Recipe`.

Steps: resolve the reference (builtin name, path or ``hf://``), follow ``extends:``
(deep merge, child wins, cycles refused), apply the caller's overrides (dotted keys to
values; the command line's ``--set`` strings are parsed by :func:`parse_set_options`),
refuse what a remote file may not set (:mod:`.trust`), validate with pydantic, then check
what pydantic cannot know (registered methods and templates, contradictory keys). Every
failure is a :class:`RecipeError` naming file, line and key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ft_plugin import registry
from ft_plugin.errors import RecipeError, UserError
from ft_plugin.hub import refs

from .axolotl import screen
from .schema import Recipe
from .trust import check_remote_keys, parse_trusted
from .validation import did_you_mean, validate
from .yaml_source import KeyPath, Located, Origin, load_value, read_yaml

SET_ORIGIN = "--set"
# A key path: names of letters, digits, _ and - between dots; list items by number.
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.(?:[A-Za-z_][A-Za-z0-9_-]*|[0-9]+))*")


@dataclass
class LoadedRecipe:
    """A validated recipe, where it came from, and the merged YAML it was built from."""

    recipe: Recipe
    name: str
    source: str
    located: Located
    warnings: list[str] = field(default_factory=list)  # one line each, for stderr
    notes: list[str] = field(default_factory=list)  # Axolotl keys with no effect here, why

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
    hint = did_you_mean(reference, known)
    raise RecipeError(f"no recipe file or builtin recipe named {reference!r}{hint}", file=reference)


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


@dataclass
class _Composition:
    """What composing one recipe learns on the way: which remote files are trusted, the
    commit each remote file was read at, and the warnings for the user."""

    trusted: list[refs.HubRef]
    pinned: dict[str, str] = field(default_factory=dict)  # remote file as shown -> at commit
    used: set[refs.HubRef] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def is_remote(self, source: _Source, named_at: str) -> bool:
        """Whether ``source`` is held to the rules of remote files; warns when it is not pinned."""
        if source.hub is None:
            return False
        ref = source.hub
        commit = refs.downloaded_commit(source.local, ref) or (ref.revision if ref.pinned else None)
        if commit:
            self.pinned[source.shown] = str(ref.at(commit))
        if not ref.pinned:
            pin = f"; pin it: {ref.at(commit)}" if commit else ""
            self._warn(
                f"warning: {named_at}{source.shown} is not pinned to a commit: "
                f"a change to it changes this run{pin}"
            )
        for trusted in self.trusted:
            same_file = (trusted.repo_type, trusted.repo_id, trusted.path) == (
                ref.repo_type, ref.repo_id, ref.path,
            )  # fmt: skip
            if same_file and trusted.revision == commit:
                self.used.add(trusted)
                return False
        return True

    def finish(self) -> list[str]:
        """The warnings, with one for each --trust-recipe that matched no file read."""
        for trusted in self.trusted:
            if trusted not in self.used:
                self._warn(
                    f"warning: --trust-recipe {trusted}: this recipe reads no such file at that "
                    "commit, so it trusts nothing"
                )
        return self.warnings

    def _warn(self, line: str) -> None:
        if line not in self.warnings:
            self.warnings.append(line)


def _load_with_parents(
    source: _Source, chain: tuple[_Source, ...], composition: _Composition, named_at: str = ""
) -> Located:
    remote = composition.is_remote(source, named_at)
    doc = read_yaml(source.local, source.shown, remote=remote)
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
        at = f"{source.shown}:{line}: extends: "
        merged = _merge(merged, _load_with_parents(parent_source, seen, composition, at))
    return _merge(merged, doc)


def parse_set_options(options: Iterable[str]) -> dict[str, Any]:
    """The command line's ``--set KEY=VALUE`` strings as dotted keys mapped to values.

    Values are parsed as YAML (``8`` is an int, ``false`` a bool, ``[a, b]`` a list), with
    the safe loader and without anchors or aliases; text that is not YAML stays text and an
    empty value is None. Keys are plain key paths. A key given twice keeps its last value,
    applied where it was last given.

    Example:
        >>> parse_set_options(["hub.private=false", "lora_target_modules=[q_proj, v_proj]"])
        {'hub.private': False, 'lora_target_modules': ['q_proj', 'v_proj']}
    """
    parsed: dict[str, Any] = {}
    for item in options:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"{item!r}: expected KEY=VALUE", file=SET_ORIGIN)
        key = _checked_key(key.strip(), SET_ORIGIN)
        try:
            value = load_value(raw, SET_ORIGIN, key) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parsed.pop(key, None)  # re-inserted: applied in the order last given, as before
        parsed[key] = value
    return parsed


def apply_overrides(
    doc: Located, overrides: Mapping[str, Any], origin: str = SET_ORIGIN
) -> Located:
    """Set dotted ``key -> value`` pairs as they are (never parsed as YAML), from ``origin``.

    Dotted keys reach into mappings and lists (``datasets.0.path``); ``origin`` is where
    errors about them say they came from.

    Example:
        >>> apply_overrides(Located({"lora_r": 8}), {"lora_r": 4, "hub.private": "false"}).data
        {'lora_r': 4, 'hub': {'private': 'false'}}
    """
    for key, value in overrides.items():
        _assign(doc, _checked_key(str(key), origin), copy.deepcopy(value), origin)
    return doc


def _checked_key(key: str, origin: str) -> str:
    if not _KEY.fullmatch(key):
        shown = key if len(key) <= 60 else key[:57] + "..."
        raise RecipeError(
            f"{shown!r}: not a recipe key; write names of letters, digits, _ and - between "
            "dots, list items by number (e.g. datasets.0.path)",
            file=origin,
        )
    return key


def _assign(doc: Located, key: str, value: Any, origin: str) -> None:
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    target: Any = doc.data
    for depth, part in enumerate(parts[:-1]):
        nxt = target[part] if _has(target, part) else None
        if nxt is None:
            if isinstance(part, int):
                raise RecipeError(
                    f"{'.'.join(map(str, parts[: depth + 1]))}: no such list item", file=origin
                )
            nxt = target[part] = {}
        if not isinstance(nxt, dict | list):
            raise RecipeError(
                f"{key}: {'.'.join(map(str, parts[: depth + 1]))} is a single value, not a section",
                file=origin,
            )
        target = nxt
    last = parts[-1]
    if isinstance(target, list) and (not isinstance(last, int) or last >= len(target)):
        raise RecipeError(f"{key}: no such list item", file=origin)
    if isinstance(target, dict) and isinstance(last, int):
        last = str(last)
    target[last] = value
    path = tuple(parts[:-1]) + (last,)
    for stale in [p for p in doc.origins if p[: len(path)] == path]:
        del doc.origins[stale]
    doc.origins[path] = Origin(origin)


def _has(container: Any, key: str | int) -> bool:
    if isinstance(container, list):
        return isinstance(key, int) and key < len(container)
    return isinstance(container, dict) and key in container


def load_recipe(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    overrides_origin: str = SET_ORIGIN,
    trust: Collection[str] = (),
) -> LoadedRecipe:
    """Load, compose, override and validate a recipe.

    ``name`` is a builtin or plugin recipe name, a path, or ``hf://…``. ``overrides`` maps
    dotted keys to Python values, set as they are (never parsed as YAML: the command
    line's strings go through :func:`parse_set_options` first); errors about them name
    ``overrides_origin``. ``trust`` names remote files (``hf://OWNER/REPO@COMMIT/PATH``)
    held to the rules of local ones (``--trust-recipe``).

    Example:
        >>> loaded = load_recipe("medical-lora", {"lora_r": 4, "hub.private": False})
        >>> loaded.recipe.lora_r, loaded.recipe.hub.private, loaded.name
        (4, False, 'medical-lora')
    """
    composition = _Composition(parse_trusted(trust))
    source = resolve_source(name)
    doc = _load_with_parents(source, (), composition)
    doc = apply_overrides(doc, overrides or {}, overrides_origin)
    check_remote_keys(doc, composition.pinned)
    screened = screen(doc)  # Axolotl's keys: empty ones unset, no-effect noted, refused
    if screened.gate is not None:  # a kind of training we do not do: that line alone
        raise screened.gate
    recipe = validate(doc, source.shown, screened.errors)
    name = recipe.name or Path(source.hub.path if source.hub else source.local).stem
    return LoadedRecipe(recipe, name, source.shown, doc, composition.finish(), screened.notes)
