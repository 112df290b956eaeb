"""The architecture's rules, checked on the source (docs/architecture.md draws them).

Every ``import`` of every module under ``appliance/`` counts, at module level and inside
functions alike: no import cycle anywhere, only ``appliance.storage`` imports rrdtool, SQL
text only in ``appliance.index``, the parts import only what the drawing allows, and no
module is over 500 lines.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "appliance"
MAX_LINES = 500
SQL = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b"
    r"|\bDELETE\s+FROM\b|\b(CREATE|DROP|ALTER)\s+(TABLE|INDEX)\b|\bPRAGMA\b",
    re.S,
)
#: part -> parts it must never import (pollster -> sample -> store -> API, DESIGN.md).
FORBIDDEN = {
    "appliance.storage": ("appliance.index", "appliance.store", "appliance.web",
                          "appliance.alarms", "appliance.pollsters"),
    "appliance.index": ("appliance.storage", "appliance.store", "appliance.web",
                        "appliance.alarms", "appliance.pollsters"),
    "appliance.pollsters": ("appliance.storage", "appliance.index", "appliance.store",
                            "appliance.web", "appliance.alarms"),
    "appliance.aggregation": ("appliance.storage", "appliance.index", "appliance.store",
                              "appliance.web", "appliance.alarms"),
    "appliance.model": ("appliance.",),
    "appliance.validation": ("appliance.",),
    "appliance.web.api.openapi": ("appliance.web.api.v1", "appliance.web.api.prometheus"),
    "appliance.web.ui": ("appliance.web.api", "appliance.pollsters", "appliance.supervise"),
    "appliance.alarms": ("appliance.web", "appliance.supervise"),
    "appliance.web.context": ("appliance.web.api", "appliance.web.ui"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _imports(name: str) -> list[tuple[str, int]]:
    """``(imported name, line)`` for every import in the module, resolved to a module of the
    project where it names one (``from pkg import submodule`` -> ``pkg.submodule``)."""
    is_package = MODULES[name].name == "__init__.py"
    out = []
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")
                package = package[: len(package) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.append((target if target in MODULES else base, node.lineno))
    return out


@functools.cache
def _project_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _line in _imports(name):
            while target and target not in MODULES:
                target = target.rpartition(".")[0]  # ``import a.b.c`` where c is a name
            if target and target != name and target.startswith("appliance"):
                edges[name].add(target)
    return edges


def _in(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".") or (
        part.endswith(".") and module.startswith(part))


def test_no_import_cycle_in_the_package():
    edges = _project_edges()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_function_level_imports():
    # The checker itself: an import inside a function is an edge like any other.
    assert "appliance.pollsters.host" in _project_edges()["appliance.pollsters"]


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_each_part_imports_only_what_it_may(part):
    bad = [
        f"{name} imports {target}"
        for name in MODULES if _in(name, part)
        for target in _project_edges()[name]
        for forbidden in FORBIDDEN[part]
        if _in(target, forbidden) and not _in(target, part)
    ]
    assert not bad, "\n".join(bad)


def test_only_storage_imports_rrdtool():
    bad = [f"{name}:{line}" for name in MODULES for target, line in _imports(name)
           if target.split(".")[0] == "rrdtool" and not _in(name, "appliance.storage")]
    assert not bad, f"rrdtool imported outside appliance/storage/: {bad}"


def test_no_importlib_of_the_projects_modules():
    bad = [f"{name}:{line}" for name in MODULES for target, line in _imports(name)
           if target.split(".")[0] == "importlib"]
    assert not bad, f"importlib used (import the module instead): {bad}"


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_sql_lives_only_in_the_index():
    bad = []
    for name, tree in TREES.items():
        if _in(name, "appliance.index"):
            continue
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings and SQL.search(node.value):
                bad.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("execute", "executemany", "executescript"):
                bad.append(f"{name}:{node.lineno}: .{node.func.attr}()")
    assert not bad, "SQL outside appliance/index/:\n" + "\n".join(bad)


def test_the_sql_check_finds_sql():
    assert SQL.search("SELECT id FROM metrics WHERE name = ?")
    assert SQL.search("UPDATE alarms SET state = ?")
    assert not SQL.search("UPDATE ab/0f.rrd 1700000000:1")  # an rrdcached command


def test_no_module_is_over_500_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
