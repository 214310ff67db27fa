"""YAML loading that remembers where every key came from.

Recipes compose (``extends:``) and get overridden (``--set``), so a value's origin is
not always the file the user named. :class:`Located` keeps, for every key path, the
file and line that set it (and whether that file came from elsewhere, e.g. the Hub), so
that an error can point at the exact place and a remote file can be held to less.

Anchors and aliases are refused before a node is built: a few lines of nested aliases
("billion laughs") expand exponentially, and a recipe never needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ft_plugin.errors import RecipeError

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    """Where a value was written: a file (or ``--set``), a 1-based line, and whether the
    file is remote (not on this machine, e.g. ``hf://``: it may not run code or reach the disk)."""

    file: str
    line: int | None = None
    remote: bool = False


@dataclass
class Located:
    """A YAML mapping plus the origin of each key path in it."""

    data: dict[str, Any]
    origins: dict[KeyPath, Origin] = field(default_factory=dict)

    def origin_of(self, path: KeyPath) -> Origin | None:
        """The origin of ``path`` or, failing that, of its nearest ancestor."""
        for cut in range(len(path), -1, -1):
            found = self.origins.get(tuple(path[:cut]))
            if found is not None:
                return found
        return None


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
SHARED_NODES = "YAML anchors and aliases are not allowed in recipes"


class _SharedNode(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(mark)
        self.line = mark.line + 1


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, stopping at the first anchor or alias before any node is built."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _SharedNode(event.start_mark)
        return super().compose_node(parent, index)


def load_value(text: str, file: str, key: str) -> Any:
    """The YAML value ``text`` of ``key`` (a ``--set`` value): safe, no anchors or aliases.

    A syntax error raises :class:`yaml.YAMLError` (the caller may take the text as it is).

    Example:
        >>> load_value("[q_proj, v_proj]", "--set", "lora_target_modules")
        ['q_proj', 'v_proj']
    """
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except _SharedNode:
        raise RecipeError(f"{key}: {SHARED_NODES}", file=file) from None


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_NoAliasLoader)
    except _SharedNode as shared:
        raise RecipeError(SHARED_NODES, file=file, line=shared.line) from None


def _construct(
    node: yaml.Node, file: str, path: KeyPath, origins: dict[KeyPath, Origin], remote: bool
) -> Any:
    origins[path] = Origin(file, node.start_mark.line + 1, remote)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        raise RecipeError(
            f"YAML tag {node.tag} is not allowed", file=file, line=node.start_mark.line + 1
        )
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, file) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool):
                raise RecipeError(
                    "mapping keys must be plain scalars",
                    file=file,
                    line=key_node.start_mark.line + 1,
                )
            key = str(key)
            if key in result:
                raise RecipeError(
                    f"{'.'.join(map(str, (*path, key)))}: duplicate key",
                    file=file,
                    line=key_node.start_mark.line + 1,
                )
            child = (*path, key)
            result[key] = _construct(value_node, file, child, origins, remote)
            origins[child] = Origin(file, key_node.start_mark.line + 1, remote)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, file, (*path, i), origins, remote) for i, item in enumerate(node.value)
        ]
    return _scalar(node, file)


def _scalar(node: yaml.Node, file: str) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # e.g. !!python/... tags: the safe loader refuses them
        problem = getattr(exc, "problem", None) or "cannot read value"
        raise RecipeError(
            f"YAML value error: {problem}", file=file, line=node.start_mark.line + 1
        ) from None
    finally:
        loader.dispose()


def parse_yaml(text: str, file: str, *, remote: bool = False) -> Located:
    """Parse ``text`` with the safe loader, recording the line of every key.

    ``remote`` marks every origin as coming from a file that is not on this machine.

    Example:
        >>> doc = parse_yaml("adapter: lora\\nlora_r: 8\\n", "r.yaml")
        >>> doc.data, doc.origins[("lora_r",)].line
        ({'adapter': 'lora', 'lora_r': 8}, 2)
    """
    try:
        node = _compose(text, file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(
            f"YAML syntax error: {problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    if node is None:
        return Located({}, {})
    origins: dict[KeyPath, Origin] = {}
    data = _construct(node, file, (), origins, remote)
    if not isinstance(data, dict):
        raise RecipeError("a recipe must be a YAML mapping of keys to values", file=file, line=1)
    return Located(data, origins)


def read_yaml(path: Path, shown_as: str | None = None, *, remote: bool = False) -> Located:
    """Read and parse a YAML file; ``shown_as`` is the name used in error messages,
    ``remote`` says the file came from elsewhere (see :func:`parse_yaml`)."""
    name = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("file not found", file=name) from None
    except UnicodeDecodeError:
        raise RecipeError("not a UTF-8 text file", file=name) from None
    except OSError as exc:
        raise RecipeError(f"cannot read: {exc.strerror}", file=name) from None
    return parse_yaml(text, name, remote=remote)
