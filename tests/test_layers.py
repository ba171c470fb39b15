"""The house rules, checked on the source itself: layers import downwards only, no circles, no torch in analysis."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "attnscope"

# Lowest first; a module may import its own package and the packages before it, never one after it.
LAYERS = [
    {"version", "errors", "progress", "contracts", "documents"},
    {"home"},
    {"models"},
    {"capture"},
    {"analysis"},
    {"attribution"},
    {"methods"},
    {"governance"},
    {"store"},
    {"render"},
    {"batch"},
    {"server", "cli", "keep"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# Named exceptions to the layering, each with its reason (function-level imports only).
ALLOWED_UPWARD = {
    # a Trace displays itself in a notebook (Trace.show, Trace._repr_html_): a lazy import inside the
    # method, as pandas' DataFrame.plot imports pandas.plotting; render/ is not imported otherwise
    ("attnscope.capture.trace", "attnscope.render.notebook"),
}
MAX_MODULE_LINES = 400


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    relative = path.relative_to(SRC.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """{module: attnscope modules it imports at run time}, from the source (function-level imports
    included, ``if TYPE_CHECKING:`` blocks left out);
    ``from attnscope.pkg import mod`` counts as importing ``attnscope.pkg.mod`` when that is a module."""
    paths = {_module_name(path): path for path in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        found: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {  # `if TYPE_CHECKING:` blocks are annotations, not imports at run time
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and _is_type_checking(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("attnscope"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in paths)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("attnscope"))
        graph[name] = found
    return graph


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert packages | modules <= set(RANK) | {"web", "store"}


def test_no_module_imports_a_higher_layer_or_the_package_root():
    offences = []
    for module, imports in import_graph().items():
        own = _package(module)
        if own in ("", "__main__"):
            continue
        for target in imports:
            other = _package(target)
            if target == "attnscope":
                offences.append(f"{module} imports the package root")
            elif other in RANK and RANK[other] > RANK[own] and (module, target) not in ALLOWED_UPWARD:
                offences.append(f"{module} ({own}) imports {target} ({other})")
    assert not offences, "\n".join(offences)


def test_there_are_no_import_circles_between_modules():
    graph = import_graph()
    modules = set(graph)
    edges = {
        m: {t for t in targets if t in modules and t != m and (m, t) not in ALLOWED_UPWARD}
        for m, targets in graph.items()
    }
    # a package's __init__ re-exporting its own modules is not a circle of the design
    edges = {m: {t for t in ts if not (t.startswith(m + ".") or m.startswith(t + "."))} for m, ts in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_analysis_imports_no_torch():
    modules = sorted(f"attnscope.analysis.{p.stem}" for p in (SRC / "analysis").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules) or 'none')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "none"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_module_is_over_400_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES
