"""The layers of docs/architecture.md, checked on the import statements of every module.

    ui -> workspace -> engines (compare, edit, export, generation, llm, embeddings, ...) -> storage

ui imports the workspace and nothing below it; compare and edit never import each other; only ui
imports gradio; storage imports nothing of ours; and no two modules import each other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "promptopt"
STORAGE = ROOT / "storage"
MAX_MODULE_LINES = 600
MAX_UI_FUNCTION_LINES = 120
# Self-contained tools that import nothing of ours (checked below), so any layer may use them.
LEAVES = {"promptopt.chromium", "promptopt.wording"}


def modules() -> dict[str, Path]:
    """Module name -> file, for promptopt/ (storage/ under its installed name) without the
    symlinked folders counted twice."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("storage", "assets"):
            continue
        found[".".join(("promptopt", *rel.with_suffix("").parts))] = path
    for path in sorted(STORAGE.rglob("*.py")):
        rel = path.relative_to(STORAGE)
        found[".".join(("promptopt", "storage", *rel.with_suffix("").parts))] = path
    return {name.removesuffix(".__init__"): path for name, path in found.items()}


def imports(name: str, path: Path) -> Iterator[str]:
    """Every module an import statement in ``path`` names (relative imports resolved), at any
    depth: a lazy import inside a function is still a dependency."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # ``from promptopt.compare import service`` imports the submodule too.
            yield from (f"{target}.{alias.name}" for alias in node.names)


MODULES = modules()
GRAPH = {name: set(imports(name, path)) for name, path in MODULES.items()}


def ours(target: str) -> str | None:
    """The module of ours that ``target`` names (a package or a module), if any."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_graph_sees_the_layers() -> None:
    # A broken walker would pass every rule below; make sure it found real edges.
    assert "promptopt.workspace.core" in MODULES and "promptopt.storage.repositories" in MODULES
    assert "promptopt.compare.service" in GRAPH["promptopt.workspace.core"]
    assert any(under(t, "promptopt.workspace") for t in GRAPH["promptopt.ui.tabs.compare"])


def test_ui_imports_only_the_workspace() -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if under(name, "promptopt.ui")
        for target in targets
        if under(target, "promptopt")
        and not (under(target, "promptopt.ui") or under(target, "promptopt.workspace"))
        and ours(target) not in LEAVES
    ]
    assert bad == []


def test_leaves_import_nothing_of_ours() -> None:
    assert {t for leaf in LEAVES for t in GRAPH[leaf] if under(t, "promptopt")} == set()


def test_nothing_below_the_ui_imports_it_or_gradio() -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if not under(name, "promptopt.ui")
        for target in targets
        if any(under(target, top) for top in ("promptopt.ui", "gradio", "gradio_client"))
    ]
    assert bad == []


def test_only_the_ui_uses_the_workspace() -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if not (under(name, "promptopt.ui") or under(name, "promptopt.workspace"))
        for target in targets
        if under(target, "promptopt.workspace")
    ]
    assert bad == []


@pytest.mark.parametrize(("engine", "other"), [("compare", "edit"), ("edit", "compare")])
def test_compare_and_edit_never_import_each_other(engine: str, other: str) -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if under(name, f"promptopt.{engine}")
        for target in targets
        if under(target, f"promptopt.{other}")
    ]
    assert bad == []


def test_storage_imports_nothing_of_ours() -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if under(name, "promptopt.storage")
        for target in targets
        if under(target, "promptopt") and not under(target, "promptopt.storage")
    ]
    assert bad == []


def test_no_import_cycles() -> None:
    """No circle of module imports (a package's ``__init__`` re-exporting its own modules is
    not a circle between modules)."""
    edges: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        found = {ours(t) for t in targets}
        edges[name] = {t for t in found if t and t != name and not under(name, t)}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if under(nxt, node) or nxt.endswith("__init__"):
                continue
            if state.get(nxt) == 1 and MODULES[nxt].name != "__init__.py":
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_module_and_ui_function_sizes() -> None:
    lines = {name: len(p.read_text(encoding="utf-8").splitlines()) for name, p in MODULES.items()}
    long_modules = sorted(name for name, n in lines.items() if n > MAX_MODULE_LINES)
    long_functions = []
    for name, path in MODULES.items():
        if not under(name, "promptopt.ui"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_UI_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    assert long_modules == [] and long_functions == []
