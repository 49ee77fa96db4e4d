"""The layout's rules, checked from the source (no module is imported):

* no import circle among the project's modules, function-level imports included (only the
  ``if __name__ == "__main__":`` block of a module is left out: it runs only as a program);
* no library module imports a command-line module (only another CLI may);
* no module over :data:`MAX_LINES` lines, except the few that are one concept (named, with why).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toymodels", "transformer", "bridge")
MAX_LINES = 450
ONE_CONCEPT = {
    # the exact reduced (P, Q) dynamics: state, vector field, solver and checks of one ODE
    "toymodels.reduced",
    # the run's configuration: every field of TrainConfig, its validation and the samplers it implies
    "transformer.config",
}
CLI_MODULES = {
    "toymodels.cli",
    "toymodels.__main__",
    "toymodels.saddle",  # ``python -m toymodels.saddle``, an alias of the analysis CLI
    "transformer.cli",
    "transformer.train",  # the ``python -m transformer.train`` entry point
    "transformer.evaluate",  # ``python -m transformer.evaluate``
    "bridge.fit",
    "bridge.compare",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_cli(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return name in CLI_MODULES or leaf in ("cli", "__main__")


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` outside its ``__main__`` block."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rsplit(".", 1)[0]

    def main_block(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        )

    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if main_block(child):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    out.add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                out.add(target)
                for alias in child.names:  # ``from pkg import submodule``
                    out.add(f"{target}.{alias.name}")
            visit(child)

    visit(tree)
    return {m for m in out if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {name: _imports(name, path, known) for name, path in sources.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
            connect(v)
    return found


def test_the_checker_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles(graph):
    assert _cycles(graph) == []


def test_library_modules_do_not_import_cli_modules(graph):
    bad = sorted(
        f"{name} imports {dep}"
        for name, deps in graph.items()
        if not _is_cli(name)
        for dep in deps
        if _is_cli(dep)
    )
    assert bad == []


def test_modules_are_small_unless_one_concept():
    long = {
        name: n
        for name, path in _sources().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in ONE_CONCEPT
    }
    assert long == {}
