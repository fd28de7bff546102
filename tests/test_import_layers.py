"""Layers point one way: no import cycle between the packages of `lab/` (docs/architecture.md).

The graph is read from the source with `ast`, so it counts every import Python could run: at module level,
inside functions (lazy imports), under ``if TYPE_CHECKING``, ``from . import x``, ``from lab import x`` and
``import a.b``. Each module is collapsed to its part: ``lab.<package>`` for anything inside a package
(``lab.providers.qemu.argv`` is ``lab.providers``), a top-level module as itself (``lab.cli``, ``lab.cli_image``).
Imports inside one part are the part's own business; an import from one part to another is an edge, and a
cycle of edges is a failure naming the parts and, for each edge, the files and lines that import."""

from __future__ import annotations

import ast
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

LAB = Path(__file__).resolve().parent.parent / "lab"


def _modules(root: Path) -> dict[str, Path]:
    """Every module under `root` by dotted name; a package is its ``__init__.py``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, tree: ast.AST, known: dict[str, Path]) -> list[tuple[str, int]]:
    """The modules of `lab` that `module` imports anywhere in its source, with the line of each import."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in known else base, node.lineno))
    resolved = []
    for name, line in found:
        while name and name not in known:  # `import lab.a.b` names lab.a.b; a name inside a module its module
            name = name.rpartition(".")[0]
        if name:
            resolved.append((name, line))
    return resolved


def part(module: str) -> str:
    """``lab.<package>`` for a module inside a package of lab, a top-level module as itself."""
    pieces = module.split(".")
    return ".".join(pieces[:2])


def import_graph(root: Path = LAB) -> dict[str, dict[str, list[str]]]:
    """part → imported part → the places (``file:line``) that import it; imports within a part left out."""
    known = _modules(root)
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, path in known.items():
        source = part(module)
        graph[source]  # every part is a node, even one that imports no other part
        tree = ast.parse(path.read_text(), filename=str(path))
        for target_module, line in _imported(module, path, tree, known):
            target = part(target_module)
            place = f"{path.relative_to(root.parent)}:{line}"
            if target not in (source, "lab") and place not in graph[source][target]:
                graph[source][target].append(place)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one part (Tarjan), each as one cycle through all of
    them where a shortest one is found, else as its parts."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, {})):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _shortest_cycles(graph: dict[str, dict[str, list[str]]], component: list[str]) -> list[list[str]]:
    """For each part of the component, a shortest way back to itself inside the component (deduplicated)."""
    members = set(component)
    seen: set[frozenset[tuple[str, str]]] = set()
    found = []
    for start in component:
        paths = {start: [start]}
        frontier = [start]
        cycle = None
        while frontier and cycle is None:
            following = []
            for node in frontier:
                for target in sorted(graph.get(node, {})):
                    if target == start:
                        cycle = paths[node] + [start]
                        break
                    if target in members and target not in paths:
                        paths[target] = paths[node] + [target]
                        following.append(target)
                if cycle:
                    break
            frontier = following
        if cycle:
            edges = frozenset(pairwise(cycle))
            if edges not in seen:
                seen.add(edges)
                found.append(cycle)
    return found


def describe(graph: dict[str, dict[str, list[str]]], component: list[str]) -> str:
    lines = [f"cycle between {', '.join(component)}:"]
    for cycle in _shortest_cycles(graph, component):
        lines.append("  " + " -> ".join(cycle))
        for source, target in pairwise(cycle):
            places = graph[source][target]
            more = f" (+{len(places) - 3} more)" if len(places) > 3 else ""
            lines.append(f"    {source} -> {target}: {', '.join(places[:3])}{more}")
    return "\n".join(lines)


def test_the_parts_of_lab_import_one_way():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "layers point both ways:\n" + "\n".join(describe(graph, c) for c in found)


def test_the_graph_sees_lazy_relative_and_dotted_imports(tmp_path):
    root = tmp_path / "lab"
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    for init in (root / "__init__.py", root / "low" / "__init__.py", root / "high" / "__init__.py"):
        init.write_text("")
    (root / "high" / "a.py").write_text("from . import b\n")
    (root / "high" / "b.py").write_text("import lab.low.c\n")
    (root / "low" / "c.py").write_text("def later():\n    from ..high import a\n")
    (root / "top.py").write_text("from lab import low\n")
    (root / "other.py").write_text("from lab.top import x\nfrom lab.low.c import later\n")
    graph = import_graph(root)
    assert dict(graph["lab.high"]) == {"lab.low": ["lab/high/b.py:1"]}
    assert dict(graph["lab.low"]) == {"lab.high": ["lab/low/c.py:2"]}
    assert set(graph["lab.other"]) == {"lab.top", "lab.low"}
    assert set(graph["lab.top"]) == {"lab.low"}
    assert cycles(graph) == [["lab.high", "lab.low"]]
    assert "lab.high -> lab.low -> lab.high" in describe(graph, ["lab.high", "lab.low"])
