"""The package's shape, kept by tools: layers point down, no cycles, one run-directory module.

The contracts live in pyproject.toml ([tool.importlinter]); import-linter and grimp read
every import, including those inside functions.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from helpers import require

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ft_plugin"
RUN_DIR_FILES = {"recipe.yaml", "metrics.json", "trainer_state.json", "adapter_config.json",
                 "adapter_model.safetensors", "report.json", "predictions.jsonl"}  # fmt: skip


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "recipes" in path.parts or "templates" in path.parts:
            continue
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def test_import_linter_contracts_are_kept() -> None:
    require("importlinter", "pip install import-linter (the dev extra)")
    from importlinter.cli import lint_imports

    sys.path.insert(0, str(REPO))
    try:
        assert lint_imports(config_filename=str(REPO / "pyproject.toml")) == 0
    finally:
        sys.path.remove(str(REPO))


def test_no_import_cycle_between_modules() -> None:
    grimp = require("grimp", "installed with import-linter (the dev extra)")
    graph = grimp.build_graph("ft_plugin", include_external_packages=False)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if module != imported and graph.chain_exists(imported, module):
                cycles.append(f"{module} -> {imported} -> … -> {module}")
    assert cycles == []


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def test_no_private_name_is_imported_across_packages() -> None:
    crossings = []
    for module, path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _absolute(module, node, path.name == "__init__.py")
            if not source.startswith("ft_plugin."):
                continue
            if source.split(".")[1] == module.split(".")[1]:
                continue  # inside one top-level package
            for alias in node.names:
                if alias.name.startswith("_"):
                    crossings.append(f"{module}: from {source} import {alias.name}")
    assert crossings == []


def test_run_directory_file_names_are_spelled_in_rundir_only() -> None:
    spelled = []
    for module, path in _modules():
        if module == "ft_plugin.rundir":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and any(name in node.value.split("/") for name in RUN_DIR_FILES)
            ):
                spelled.append(f"{module}:{node.lineno}: {node.value!r}")
    assert spelled == []


def test_no_import_cycle_between_packages() -> None:
    # Module cycles are not all: `train -> cli -> federated -> train` was one between
    # packages (each module's own imports acyclic), the shape a newcomer trips on.
    import grimp

    graph = grimp.build_graph("ft_plugin", include_external_packages=False)

    units = sorted(_layered_modules(), key=len, reverse=True)

    def package(module: str) -> str:  # hub/ is split over two layers: each part is a unit
        return next((u for u in units if module == u or module.startswith(u + ".")),
                    ".".join(module.split(".")[:2]))  # fmt: skip

    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if package(module) != package(imported) and "ft_plugin" not in (module, imported):
                edges.setdefault(package(module), set()).add(package(imported))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(
        f"{a} -> {b} -> … -> {a}" for a in edges for b in edges[a] if reaches(b, a, {b})
    )
    assert cycles == []


def _layered_modules() -> set[str]:
    """Every module named in a layer of pyproject.toml's layers contract."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return {part.strip() for layer in contract["layers"]
            for part in layer.replace(":", "|").split("|")}  # fmt: skip


def test_every_module_of_a_package_split_over_layers_is_in_a_layer() -> None:
    # import-linter only checks the modules it is told of: a new hub/ module outside
    # the contract would be free to import anything.
    modules = _layered_modules()
    split = {m.rsplit(".", 1)[0] for m in modules if m.count(".") == 2}
    assert split == {"ft_plugin.hub"}
    hub = PACKAGE / "hub"
    found = {f"ft_plugin.hub.{p.stem}" for p in hub.glob("*.py") if p.stem != "__init__"}
    assert found - modules == set(), "add these to a layer in pyproject.toml"


def test_architecture_md_names_every_layer_and_every_top_level_module() -> None:
    layered = {module.split(".")[1] for module in _layered_modules()}
    top_level = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
                 if (path.suffix == ".py" and path.stem != "__init__")
                 or (path / "__init__.py").is_file()}  # fmt: skip
    assert top_level - {"recipes", "templates"} <= layered, "a module in no layer of pyproject.toml"
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = sorted(m for m in layered if f"`{m}/`" not in text and f"`{m}.py`" not in text)
    assert missing == [], "ARCHITECTURE.md's layer table lacks these"


def test_no_method_name_is_compared_outside_methods() -> None:
    # A method answers for itself (methods/base.py): `adapter == "qlora"` elsewhere is
    # knowledge a plugin method could not share.
    from ft_plugin.registry import BUILTIN_METHODS

    compared = []
    for module, path in _modules():
        if module.startswith("ft_plugin.methods"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            names = [c.value for o in operands for c in ast.walk(o)
                     if isinstance(c, ast.Constant) and c.value in BUILTIN_METHODS]  # fmt: skip
            if names:
                compared.append(f"{module}:{node.lineno}: {', '.join(names)}")
    assert compared == []
