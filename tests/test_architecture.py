"""The roles import one way and no module imports itself back: connectors/ (the outside world and the
shared model) knows nothing of detections/ or pipeline/, detections/ nothing of pipeline/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("connectors", "detections", "pipeline")
# What each role may import of the others.
ALLOWED = {"connectors": set(), "detections": {"connectors"}, "pipeline": {"connectors", "detections"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "kubesigma." + ".".join(parts)


def _product_modules() -> dict[str, Path]:
    return {_module_name(p): p for role in ROLES for p in sorted((ROOT / role).rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """kubesigma modules this module imports anywhere (functions included), resolved to module names."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from package import module` imports the module; `from module import name` the module
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        out.update(t for t in targets if t.startswith("kubesigma."))
    return {t for t in out if t in known}


def _graph() -> dict[str, set[str]]:
    modules = _product_modules()
    known = set(modules)
    return {name: _imports(path, name, known) - {name} for name, path in modules.items()}


def _role(module: str) -> str:
    return module.split(".")[1]


def test_roles_import_one_way() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _role(target) != _role(module) and _role(target) not in ALLOWED[_role(module)]
    )
    assert wrong == []


def test_no_module_imports_itself_back() -> None:
    """No cycle between modules (a package's __init__ importing its own submodules is not one, as long
    as no submodule imports the package back)."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_import_graph_sees_the_imports_it_checks() -> None:
    """The checks above would pass on an empty graph: the walk finds the imports that matter."""
    graph = _graph()
    assert "kubesigma.connectors.model.event" in graph["kubesigma.connectors.model.records"]
    assert "kubesigma.connectors.model.alert" in graph["kubesigma.pipeline.alerts"]
    assert sum(len(t) for t in graph.values()) > 100
