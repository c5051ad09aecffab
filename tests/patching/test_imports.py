"""tailorkit.patching has no import cycle: the engine imports the methods, no method imports the engine."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_imports(path: Path, package: str) -> set[str]:
    """Modules of `package` imported at module level (imports inside functions are deferred, not cycles)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(package)}
    return found


def test_patching_import_graph_is_acyclic() -> None:
    package = "tailorkit.patching"
    root = SRC / "tailorkit" / "patching"
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[name] = {m for m in _module_imports(path, package) if m != name}
    from tailorkit.patching.methods import MODULES

    graph["tailorkit.patching.methods"] |= {f"tailorkit.patching.methods.{m}" for m in MODULES}
    assert "tailorkit.patching.methods.base" in graph
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*stack, node, nxt])
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert "tailorkit.patching.engine" not in set().union(*(graph[m] for m in graph if ".methods" in m))
