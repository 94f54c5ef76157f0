"""No import cycle between the modules of tokensvc/ and workers/; the API reaches
storage only through the stores.

Every import counts: at module level, inside functions (a lazy import only hides a
cycle until the function runs) and under ``if TYPE_CHECKING:`` (a cycle for the
type checker is still two modules that cannot be read one without the other).
A package's ``__init__`` is not an edge of the modules it holds.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tokensvc", "workers")
# Cycles left for now, each with its reason (none).
KNOWN_CYCLES: list[list[str]] = []
# What the API layer (tokensvc/api/) must not import: storage is the stores' (only the
# database driver's error types, to answer an outage as a 503).
NOT_FOR_THE_API = ("tokensvc.db", "sqlalchemy", "redis", "pymemcache")


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in ROOT.joinpath(package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(tree: ast.Module, modules: dict[str, Path]) -> Iterator[str]:
    """The modules of ours ``tree`` imports, however deep the import statement sits."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in modules and name.partition(".")[0] in PACKAGES:
                yield name
                break  # "from a.b import c": a.b.c if it is a module, else a.b


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set(imported(ast.parse(path.read_text()), modules))
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    assert [c for c in cycles(import_graph()) if c not in KNOWN_CYCLES] == []


def every_import(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_the_api_reaches_storage_only_through_the_stores() -> None:
    found = {
        f"{path.name}: {name}"
        for path in ROOT.joinpath("tokensvc", "api").glob("*.py")
        for name in every_import(path)
        if name.startswith(NOT_FOR_THE_API) and name != "sqlalchemy.exc"
    }
    assert found == set()
