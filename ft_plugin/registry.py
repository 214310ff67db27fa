"""One registry for recipes, domain templates and fine-tuning methods.

Builtins ship with ft-plugin; third-party packages add more through Python entry
points, without touching our code::

    [project.entry-points."ft_plugin.recipes"]
    my-recipes = "my_pkg:RECIPES_DIR"        # a folder of *.yaml, a file, or a callable

    [project.entry-points."ft_plugin.templates"]
    my-templates = "my_pkg:TEMPLATES_DIR"

    [project.entry-points."ft_plugin.methods"]
    my-method = "my_pkg.method:MyMethod"     # a FineTuningMethod subclass

Recipe and template names are file stems. Methods are imported only when used, so
listing and validating recipes never imports torch.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
BUILTIN_RECIPES_DIR = PACKAGE_DIR / "recipes"
BUILTIN_TEMPLATES_DIR = PACKAGE_DIR / "templates"

# name -> "module:attribute" of the class implementing it (see ft_plugin/methods/).
BUILTIN_METHODS: dict[str, str] = {
    "full": "ft_plugin.methods.full:FullMethod",
    "freeze": "ft_plugin.methods.freeze:FreezeMethod",
    "lora": "ft_plugin.methods.lora:LoraMethod",
    "qlora": "ft_plugin.methods.qlora:QLoraMethod",
    "dora": "ft_plugin.methods.dora:DoraMethod",
    "ia3": "ft_plugin.methods.ia3:IA3Method",
    "llama-adapter": "ft_plugin.methods.llama_adapter:LlamaAdapterMethod",
    "bottleneck": "ft_plugin.methods.bottleneck:BottleneckMethod",
}


@dataclass(frozen=True)
class FileEntry:
    """A recipe or template known to the registry."""

    name: str
    path: Path
    source: str  # "builtin" or "plugin:<distribution>"


def _yaml_files(where: Path) -> list[Path]:
    if where.is_file():
        return [where]
    return sorted(p for p in where.glob("*.yaml") if not p.name.startswith("_"))


def _plugin_files(group: str) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for ep in entry_points(group=group):
        dist = ep.dist.name if ep.dist else ep.name
        try:
            target: Any = ep.load()
            if callable(target):
                target = target()
            paths = target if isinstance(target, list | tuple) else [target]
            for path in paths:
                found.extend((p, f"plugin:{dist}") for p in _yaml_files(Path(path)))
        except Exception as exc:  # a broken plugin must not break the tool
            warnings.warn(
                f"ignoring {group} entry point {ep.name!r} from {dist}: {exc}", stacklevel=2
            )
    return found


def _collect(builtin_dir: Path, group: str) -> dict[str, FileEntry]:
    entries: dict[str, FileEntry] = {}
    for path in _yaml_files(builtin_dir):
        entries[path.stem] = FileEntry(path.stem, path, "builtin")
    for path, source in _plugin_files(group):
        # Builtins win: a plugin cannot silently replace `medical-lora`.
        entries.setdefault(path.stem, FileEntry(path.stem, path, source))
    return entries


@cache
def recipes() -> dict[str, FileEntry]:
    """Every recipe by name: builtins plus the `ft_plugin.recipes` entry points.

    Example:
        >>> "medical-lora" in recipes()
        True
    """
    return _collect(BUILTIN_RECIPES_DIR, "ft_plugin.recipes")


@cache
def templates() -> dict[str, FileEntry]:
    """Every domain template by name: builtins plus the `ft_plugin.templates` entry points."""
    return _collect(BUILTIN_TEMPLATES_DIR, "ft_plugin.templates")


@cache
def method_names() -> dict[str, str]:
    """Every fine-tuning method name mapped to where it is defined (nothing is imported)."""
    names = dict(BUILTIN_METHODS)
    for ep in entry_points(group="ft_plugin.methods"):
        names.setdefault(ep.name, ep.value)
    return names


def load_method(name: str) -> Any:
    """Import and instantiate the fine-tuning method registered as ``name``.

    Example:
        >>> load_method("lora").name
        'lora'
    """
    target = method_names()[name]
    module_name, _, attribute = target.partition(":")
    obj: Callable[[], Any] = getattr(importlib.import_module(module_name), attribute)
    return obj()


def clear_caches() -> None:
    """Forget what was discovered (after installing a plugin in the same process)."""
    for fn in (recipes, templates, method_names):
        fn.cache_clear()
