"""The import rules that keep the layers apart, checked over the source (no module is imported):

- storage imports nothing of ours; generation imports neither bot nor cogs, nor discord or SQLAlchemy,
  and of storage only the file store (workers read inputs from it); bot never imports cogs (cogs
  register what they add when they load);
- a cog imports no other cog (what they share lives in the modules directly under cogs/);
- generation's subpackages point one way, along the path of a request:
  specs and the shared modules → pictures → models → bundled → operations → training → pool;
- no import cycle anywhere, counting imports inside functions (a lazy import that closes a cycle
  still ties the two modules together); `if TYPE_CHECKING:` imports do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "cogs", "generation", "storage")
# generation's layers: a module may import its own subpackage and any of a lower rank
GENERATION_RANKS = {
    "": 0,  # generation/*.py: errors, events, outputs, config, prompt, sizes, logs, vocab
    "specs": 0,
    "pictures": 1,
    "models": 2,
    "bundled": 3,
    "operations": 4,
    "training": 5,
    "pool": 6,
}
GENERATION_MAY_USE = {"storage.files"}  # the content-addressed file store: no database


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, imported when the code runs) for each import in the file; `from x import y`
    counts as x.y when x.y is a module of ours. Imports under `if TYPE_CHECKING:` are for the type
    checker only; imports inside functions run when the function does."""
    tree = ast.parse(path.read_text(), str(path))

    def visit(node: ast.AST, runs: bool) -> Iterator[tuple[str, bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, runs
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, runs
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    yield f"{node.module}.{alias.name}", runs
        if _is_type_checking(node):
            assert isinstance(node, ast.If)
            for child in node.body:
                yield from visit(child, False)
            for child in node.orelse:
                yield from visit(child, runs)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, runs)

    yield from visit(tree, True)


def _ours(name: str) -> str | None:
    """The module of ours that `name` is, or the package it lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _run_time_edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for imported, runs in _imports(path):
            target = _ours(imported)
            if target and target != name and runs:
                graph[name].add(target)
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return (
        parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / "generation" / parts[1]).is_dir()) else ""
    )


def test_layers_import_one_way() -> None:
    wrong = []
    for name, path in MODULES.items():
        package = name.split(".")[0]
        for imported, _ in _imports(path):
            top = imported.split(".")[0]
            if package == "storage" and top in {"bot", "cogs", "generation"}:
                wrong.append(f"{name} imports {imported}")
            forbidden = top in {"bot", "cogs", "storage", "discord", "sqlalchemy"}
            if package == "generation" and forbidden and imported not in GENERATION_MAY_USE:
                wrong.append(f"{name} imports {imported}")
            if package == "bot" and top == "cogs":
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_no_cog_imports_another() -> None:
    wrong = []
    for name, path in MODULES.items():
        parts = name.split(".")
        if parts[0] != "cogs":
            continue
        own = parts[1] if len(parts) > 1 and (ROOT / "cogs" / parts[1]).is_dir() else None
        for imported, _ in _imports(path):
            target = _ours(imported)
            if target is None or not target.startswith("cogs."):
                continue
            other = target.split(".")[1]
            if (ROOT / "cogs" / other).is_dir() and other != own:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_generation_subpackages_point_one_way() -> None:
    wrong = []
    for name, path in MODULES.items():
        if not name.startswith("generation."):
            continue
        layer = _layer(name)
        for imported, _ in _imports(path):
            target = _ours(imported)
            if target is None or not target.startswith("generation.") or target == "generation":
                continue
            other = _layer(target)
            rank, other_rank = GENERATION_RANKS[layer], GENERATION_RANKS[other]
            if other != layer and (other_rank > rank or (other_rank == rank and rank > 0)):
                wrong.append(f"{name} ({layer or 'shared'}) imports {target} ({other or 'shared'})")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = _run_time_edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    # a package's __init__ re-exporting its own modules is not a cycle between modules
    real = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert real == []


def test_no_module_is_over_400_lines() -> None:
    """The product's modules and the fake Discord the end-to-end tests stand on."""
    paths = [*MODULES.values(), *(ROOT / "tests" / "fakediscord").glob("*.py")]
    long = {
        str(path.relative_to(ROOT)): n for path in paths if (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
