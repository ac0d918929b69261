"""The shape a newcomer can hold (issue 26): no module in services/ over 500 lines, no function over
60, and no import cycle between the hub's modules (grimp's graph, the one import-linter reads)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

SERVICES = Path(__file__).resolve().parents[2] / "services"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60


def sources() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(SERVICES)): n for p in sources()
            if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_over_60_lines():
    long = {}
    for p in sources():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(SERVICES)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_between_the_hubs_modules():
    graph = grimp.build_graph("hub")
    assert len(graph.modules) > 100  # the whole package was read
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(m):
            return {"a": {"b"}, "b": {"a"}, "c": {"a"}}[m]

    assert cycles(Graph()) == [["a", "b"]]


def test_every_name_imported_from_the_hub_exists():
    """A module split that leaves an importer behind fails here, not in the one command that
    imports it lazily (as `hub policy replay` once did)."""
    import importlib

    missing = []
    for p in [*sources(), *(SERVICES.parent / "tests").rglob("*.py"), *(SERVICES.parent / "bench").rglob("*.py")]:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "hub":
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if alias.name != "*" and not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ModuleNotFoundError:
                            missing.append(f"{p.name}: from {node.module} import {alias.name}")
    assert missing == []
