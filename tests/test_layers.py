"""The import structure, read from the source (AST; imports inside functions included): no import
circle among the project's modules; `tutor` imports no stage package; no product package imports
the test-support package (`testkit`) or the benchmarks (`bench`).

    python tests/test_layers.py     # prints every circle and forbidden import
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tutor", "datagen", "trainer", "server", "evaluation", "bench", "pipeline", "testkit")
STAGES = ("datagen", "trainer", "server", "evaluation", "bench", "pipeline")
PRODUCT = ("tutor", "datagen", "trainer", "server", "evaluation", "pipeline", "handler", "docker")
TEST_ONLY = ("testkit", "bench")


def module_files() -> dict[str, Path]:
    """Module name -> file, for every package module, handler.py and docker/*.py."""
    files = {"handler": ROOT / "handler.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    for path in sorted((ROOT / "docker").glob("*.py")):
        files[f"docker.{path.stem}"] = path
    return files


def imported(path: Path, name: str, modules: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in its body (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    modules = set(files)
    return {name: imported(path, name, modules) for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def top(name: str) -> str:
    return name.split(".")[0]


def forbidden(graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` lines for each import that crosses a layer it must not."""
    bad = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if top(name) == "tutor" and top(target) in STAGES:
                bad.append(f"{name} -> {target} (tutor imports no stage package)")
            if top(name) in PRODUCT and top(target) in TEST_ONLY:
                bad.append(f"{name} -> {target} (the product imports no test support or bench)")
    return bad


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert len(graph) > 100
    # tutor.cli imports each stage's cli inside build_parser (importlib), engines import lazily:
    # server.launch imports the gateway inside a function only
    assert "server.gateway" in graph["server.launch"]
    assert "tutor.proc" in graph["testkit.asgi"]


def test_circles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_import_circle() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_layers() -> None:
    bad = forbidden(import_graph())
    assert not bad, "\n".join(bad)


if __name__ == "__main__":
    g = import_graph()
    for c in circles(g):
        print("circle:", " <-> ".join(c))
    for line in forbidden(g):
        print("forbidden:", line)
