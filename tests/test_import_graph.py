"""No import cycle inside the package (issue 23): the import graph is read from the source with `ast`.

Two graphs are checked:

- module level: the imports that run when a module is imported (including those under plain `if`/`try`, and
  `from . import x` / relative imports resolved against the importing module). A cycle here makes the import order
  matter and breaks as soon as someone imports the "wrong" module first.
- deferred: the same plus the imports written inside functions. A cycle that exists only through a deferred import
  still ties two modules into one unit; moving the import into a function hides it without removing it.

Imports under `if TYPE_CHECKING:` never run and are left out of both. An edge goes to the module an import names:
`from tailorkit.a.b import x` is an edge to `tailorkit.a.b.x` when that is a module, else to `tailorkit.a.b`. The
implicit import of a parent package that Python performs first is not an edge (every package would be a cycle).
Imports by computed name (`importlib.import_module(f"...")`, used for plugin registries) are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "tailorkit"

# Cycles known and being fixed on another branch, as the set of modules in the strongly connected component.
# Delete an entry when that branch is merged; an entry that no longer matches a cycle fails the test, so none stays.
ALLOWED_DEFERRED: dict[frozenset[str], str] = {}
ALLOWED_MODULE_LEVEL: dict[frozenset[str], str] = {}


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], deferred: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``body`` that run (module level; with ``deferred`` also inside functions)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _imports(node.body, deferred)
            yield from _imports(node.orelse, deferred)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _imports(block, deferred)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            yield from _imports(node.body, deferred)
            yield from _imports(getattr(node, "orelse", []), deferred)
        elif isinstance(node, ast.ClassDef) or (deferred and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))):
            yield from _imports(node.body, deferred)  # a class body runs at import time; a function body when called


def import_graph(src: Path, package: str, *, deferred: bool) -> dict[str, set[str]]:
    """Module name -> the package's modules it imports (see the module docstring for what counts as an edge)."""
    files = {_module_name(p, src): p for p in sorted((src / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)).body, deferred):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in files else module)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted; sorted by first name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module: a -> b -> ... -> a."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth-first search back to start
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover (a component always has one)


def _check(deferred: bool, allowed: dict[frozenset[str], str]) -> None:
    graph = import_graph(SRC, PACKAGE, deferred=deferred)
    found = cycles(graph)
    new = [c for c in found if frozenset(c) not in allowed]
    stale = [f"{sorted(k)} (branch {v})" for k, v in allowed.items() if list(sorted(k)) not in found]
    lines = [" -> ".join(cycle_path(graph, c)) for c in new]
    assert not new, "import cycle(s):\n  " + "\n  ".join(lines)
    assert not stale, "allow-list entries that no longer match a cycle; delete them:\n  " + "\n  ".join(stale)


def test_no_module_level_import_cycle() -> None:
    _check(deferred=False, allowed=ALLOWED_MODULE_LEVEL)


def test_no_import_cycle_through_deferred_imports() -> None:
    _check(deferred=True, allowed=ALLOWED_DEFERRED)


def test_graph_sees_the_package() -> None:
    graph = import_graph(SRC, PACKAGE, deferred=False)
    assert "tailorkit.core.train" in graph and "tailorkit.hoi.methods.base" in graph
    assert "tailorkit.core.registry" in graph["tailorkit.hoi.methods.base"]


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from toy import a\n",
        "a.py": "from . import b\n",
        "b.py": "from .sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy import a\n"
        "def f():\n    from ..d import g\n",
        "d.py": "import toy.a\ndef g():\n    pass\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    return tmp_path


def test_detector_finds_cycles_and_skips_type_checking(toy: Path) -> None:
    module_level = import_graph(toy, "toy", deferred=False)
    assert module_level["toy.a"] == {"toy.b"}
    assert module_level["toy.b"] == {"toy.sub.c"}
    assert module_level["toy.sub.c"] == set()  # TYPE_CHECKING and function bodies left out
    assert cycles(module_level) == []
    deferred = import_graph(toy, "toy", deferred=True)
    assert deferred["toy.sub.c"] == {"toy.d"}  # `from ..d import g` resolved; TYPE_CHECKING still left out
    assert cycles(deferred) == [["toy.a", "toy.b", "toy.d", "toy.sub.c"]]
    assert cycle_path(deferred, ["toy.a", "toy.b", "toy.d", "toy.sub.c"]) == [
        "toy.a",
        "toy.b",
        "toy.sub.c",
        "toy.d",
        "toy.a",
    ]


# Private names (a leading underscore) imported from another module, known and being fixed elsewhere:
# (importing module, imported module, name) -> the branch that fixes it. A stale entry fails the test.
PRIVATE_ALLOWED: dict[tuple[str, str, str], str] = {}


def private_imports(src: Path, package: str) -> set[tuple[str, str, str]]:
    """(importing module, imported module, name) for every `from m import _name` of a package module (any depth)."""
    found = set()
    for path in sorted((src / package).rglob("*.py")):
        name = _module_name(path, src)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                module = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith(package):
                found.update(
                    (name, module, a.name) for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
                )
    return found


def test_no_private_name_imported_across_modules() -> None:
    found = private_imports(SRC, PACKAGE)
    new = sorted(found - set(PRIVATE_ALLOWED))
    stale = sorted(set(PRIVATE_ALLOWED) - found)
    assert not new, "make these public where they are defined:\n  " + "\n  ".join(
        f"{a} imports {b}.{n}" for a, b, n in new
    )
    assert not stale, f"PRIVATE_ALLOWED entries no longer needed; delete them: {stale}"
