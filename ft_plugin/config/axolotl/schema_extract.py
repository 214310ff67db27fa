"""Read every key of Axolotl's config schema out of a released wheel, without installing it.

Axolotl pins versions that conflict with ours, so its schema is read as source: the
pydantic classes under ``axolotl/utils/schemas/`` (the top-level config, composed from
mixins), the dataset entry classes, and each integration's ``args.py`` (the keys a
``plugins:`` entry adds). The output is the pinned key list in the repo
(``schema-VERSION.tsv``: key, where Axolotl defines it, its type), which the key table
(``keys.yaml``) must cover; a test checks it.

Usage (a developer's, when the pin moves)::

    pip download axolotl==0.21.0 --no-deps --python-version 3.12 --only-binary=:all: -d /tmp/axo
    python -m ft_plugin.config.axolotl.schema_extract /tmp/axo/axolotl-0.21.0-py3-none-any.whl \\
        > ft_plugin/config/axolotl/schema-0.21.0.tsv
"""

from __future__ import annotations

import ast
import sys
import zipfile
from collections.abc import Iterator
from pathlib import PurePosixPath

TOP = "AxolotlInputConfig"
DATASET_CLASSES = ("SFTDataset", "DPODataset", "KTODataset", "StepwiseSupervisedDataset",
                   "SyntheticDataset", "PretrainingDataset")  # fmt: skip

Classes = dict[str, tuple[list[str], list[tuple[str, str]], str]]  # name -> bases, fields, file


def _classes(wheel: zipfile.ZipFile) -> Classes:
    found: Classes = {}
    for name in sorted(wheel.namelist()):
        path = PurePosixPath(name)
        in_schemas = name.startswith("axolotl/utils/schemas/")
        in_integrations = name.startswith("axolotl/integrations/") and path.name == "args.py"
        if path.suffix != ".py" or not (in_schemas or in_integrations):
            continue
        for node in ast.parse(wheel.read(name)).body:
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).split(".")[-1] for b in node.bases]
                fields = []
                for item in node.body:
                    if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                        continue
                    kind = ast.unparse(item.annotation)
                    if not kind.startswith("ClassVar"):  # a YAML key is its alias, if it has one
                        fields += [(key, kind) for key in _names(item)]
                found.setdefault(node.name, (bases, fields, name))
    return found


def _names(item: ast.AnnAssign) -> list[str]:
    """The YAML keys of one field: ``Field(alias=...)``'s alias, and its own name."""
    names = [item.target.id]  # type: ignore[union-attr]
    if isinstance(item.value, ast.Call):
        for keyword in item.value.keywords:
            if keyword.arg == "alias" and isinstance(keyword.value, ast.Constant):
                names.insert(0, str(keyword.value.value))
    return names


def _plugin_args(wheel: zipfile.ZipFile) -> dict[str, str]:
    """Each integration's input-args class (what ``get_input_args`` returns) -> its name."""
    args: dict[str, str] = {}
    for name in wheel.namelist():
        if not name.startswith("axolotl/integrations/") or not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(wheel.read(name))):
            if isinstance(node, ast.FunctionDef) and node.name == "get_input_args":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Constant):
                        args[str(ret.value.value).split(".")[-1]] = name.split("/")[2]
    return args


def _fields(classes: Classes, name: str, seen: set[str]) -> Iterator[tuple[str, str, str]]:
    """(key, type, class) of ``name`` and its bases, bases first."""
    if name not in classes or name in seen:
        return
    seen.add(name)
    bases, fields, _ = classes[name]
    for base in bases:
        yield from _fields(classes, base, seen)
    for key, kind in fields:
        yield key, kind, name


def schema_rows(wheel_path: str) -> list[tuple[str, str, str]]:
    """``(key, defined in, type)`` for every top-level, dataset-entry and plugin key."""
    with zipfile.ZipFile(wheel_path) as wheel:
        classes, plugins = _classes(wheel), _plugin_args(wheel)
    rows: dict[str, tuple[str, str, str]] = {}
    for key, kind, where in _fields(classes, TOP, set()):
        rows[key] = (key, where, kind)
    for dataset in DATASET_CLASSES:
        for key, kind, where in _fields(classes, dataset, set()):
            rows.setdefault(f"datasets.{key}", (f"datasets.{key}", where, kind))
    for name, plugin in sorted(plugins.items()):
        for key, kind, _ in _fields(classes, name, set()):
            rows.setdefault(key, (key, f"plugin:{plugin}", kind))
    return sorted(rows.values())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for key, where, kind in schema_rows(argv[0]):
        print("\t".join((key, where, " ".join(kind.split()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
