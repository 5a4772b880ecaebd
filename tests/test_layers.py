"""The package's architecture holds: core/ is layered, nothing imports in circles, lazy imports say why.

The rule (core/__init__.py and the README's code map): core's folders form
layers common → model → io → render → apps → fit, and a folder imports only
the folders listed before it; core imports nothing of the Blender side. On
the Blender side scene/ builds from core/, and ui/ and operators/ never import
each other (they share properties.py and jobs.py). Imports inside functions
are only for heavy dependencies and carry a comment saying so.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "facestage"
LAYERS = ("common", "model", "io", "render", "apps", "fit")
SKIP = {"tests", "tools", "bench", "docs", "samples", "wheels", "dist", "out"}


def _modules() -> dict[str, Path]:
    """Every module of the shipped package: dotted name → file."""
    found = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in SKIP or relative.parts[0].startswith("."):
            continue
        parts = [PACKAGE, *relative.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, ast.stmt, bool]]:
    """(imported facestage module, statement, inside a function) for every import of the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nested = {id(node) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
              for node in ast.walk(fn) if node is not fn}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in MODULES else stem for alias in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                while target not in MODULES and "." in target:
                    target = target.rpartition(".")[0]
                yield target, node, id(node) in nested


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[2]) if len(parts) > 2 and parts[1] == "core" and parts[2] in LAYERS else None


def test_core_folders_import_only_the_layers_before_them():
    wrong = []
    for name, path in MODULES.items():
        layer = _layer(name)
        if layer is None:
            continue
        for target, node, _ in _imports(name, path):
            other = _layer(target)
            if other is None and target.startswith(f"{PACKAGE}.core") and target != f"{PACKAGE}.core":
                wrong.append(f"{name}:{node.lineno} imports {target}, which is in no layer")
            elif other is not None and other > layer:
                wrong.append(f"{name}:{node.lineno} ({LAYERS[layer]}) imports {target} ({LAYERS[other]})")
            elif not target.startswith(f"{PACKAGE}.core"):
                wrong.append(f"{name}:{node.lineno} imports the Blender side ({target})")
    assert wrong == []


@pytest.mark.parametrize("importer, forbidden", [("ui", "operators"), ("operators", "ui"), ("scene", "operators"),
                                                 ("scene", "ui"), ("core", "scene")])
def test_blender_side_folders_do_not_import_each_other(importer, forbidden):
    wrong = [f"{name}:{node.lineno} imports {target}" for name, path in MODULES.items()
             if name.startswith(f"{PACKAGE}.{importer}.") or name == f"{PACKAGE}.{importer}"
             for target, node, _ in _imports(name, path) if target.startswith(f"{PACKAGE}.{forbidden}")]
    assert wrong == []


def test_no_module_imports_itself_through_a_circle():
    graph = {name: {t for t, _, _ in _imports(name, path) if t != name} for name, path in MODULES.items()}
    # a package __init__ that re-exports its own submodules is not a circle
    graph = {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []


def test_imports_inside_functions_say_why():
    silent = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom) and "#" not in lines[node.lineno - 1]:
                    silent.append(f"{name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert silent == []


def test_the_rule_is_written_where_it_is_enforced():
    text = (ROOT / "core" / "__init__.py").read_text(encoding="utf-8")
    assert all(f"    {layer}" in text for layer in LAYERS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Code map" in readme and all(f"`core/{layer}/`" in readme for layer in LAYERS)
