"""The layers of docs/architecture.md hold in the code: which package may import which, no cycles, HTTP at the edge.

Every import counts, those inside functions too: a lazy import is still a dependency.
"""

import ast
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
GROUND = ("service", "config", "errors", "records", "wire", "jobspec", "models.catalog")
HTTP_LIBRARIES = ("fastapi", "starlette", "uvicorn")
HTTP_UNITS = {"api", "web", "main", "cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    files = [*ROOT.glob("service/**/*.py"), *ROOT.glob("models/**/*.py")]
    return {module_name(p): p for p in files}


def imported(path: Path) -> set[str]:
    """Every module `path` imports (at the top or inside a function), as written."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import module` names the module; `from pkg import name`, pkg
                full = f"{node.module}.{alias.name}"
                names.add(full if full in modules() else node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def ours(name: str) -> str | None:
    """`name` relative to service/ (models keep their prefix), if it is one of our modules; else None."""
    if name not in modules():
        return None
    return name.removeprefix("service.") if name.startswith("service.") else name


def unit(module: str) -> str:
    """The layer a module belongs to: its package under service/ (or the module itself at the top), or models."""
    parts = module.split(".")
    if parts[0] == "models":
        return "models.catalog" if module == "models.catalog" else "models"
    return "service" if len(parts) == 1 else parts[1]


def within(target: str, entries: Iterable[str]) -> bool:
    return any(target == entry or target.startswith(f"{entry}.") for entry in entries)


@cache
def allowed() -> dict[str, list[str]]:
    """The doc's list under `## Layers`: each package and what it may import besides the ground floor."""
    section = DOC.read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    rules = re.findall(r"^- `(\w+)`:(.*)$", section, flags=re.MULTILINE)
    return {name: [e.strip() for e in rest.split(",") if e.strip()] for name, rest in rules}


def violations(edges: Iterable[tuple[str, str]], rules: dict[str, list[str]]) -> list[str]:
    """The imports (importer, imported: our names relative to service/) that the rules do not allow."""
    bad = []
    for source, target in edges:
        layer = unit(f"service.{source}" if not source.startswith("models") else source)
        if layer == unit(f"service.{target}" if not target.startswith("models") else target):
            continue
        if layer == "models":
            if not target.startswith("models"):
                bad.append(f"{source} -> {target}: models imports nothing of service")
            continue
        if within(target, GROUND) or within(target, rules.get(layer, [])):
            continue
        bad.append(f"{source} -> {target}: `{layer}` may not import it (docs/architecture.md, Layers)")
    return bad


def our_edges() -> list[tuple[str, str]]:
    edges = []
    for name, path in modules().items():
        source = ours(name)
        assert source is not None
        edges += [(source, target) for i in imported(path) if (target := ours(i)) is not None and target != source]
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_in_the_tree_has_a_rule_and_every_rule_a_package():
    units = {unit(m) for m in modules()} - {"models", "models.catalog", *GROUND}
    assert units == set(allowed()), (
        f"packages without a rule: {units - set(allowed())}; stale rules: {set(allowed()) - units}"
    )


def test_imports_follow_the_layers_of_the_architecture_doc():
    assert violations(our_edges(), allowed()) == []


def test_the_layer_check_catches_a_bad_import():
    """The check can fail: a deliberate upward import (the engine reaching into the database) is reported."""
    bad = [("training.engine", "storage.jobs"), ("client.client", "api.routers.jobs"), ("models.lenet", "config")]
    assert len(violations([*our_edges(), *bad], allowed())) == 3
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back():
    graph: dict[str, set[str]] = {}
    for source, target in our_edges():
        graph.setdefault(source, set()).add(target)
    assert cycles(graph) == []


def test_no_two_packages_import_each_other():
    graph: dict[str, set[str]] = {}
    for source, target in our_edges():
        a, b = (unit(f"service.{n}" if not n.startswith("models") else n) for n in (source, target))
        if a != b:
            graph.setdefault(a, set()).add(b)
    assert cycles(graph) == []


def test_only_the_edge_imports_http_libraries():
    speaking = {
        unit(name) for name, path in modules().items() if any(i.split(".")[0] in HTTP_LIBRARIES for i in imported(path))
    }
    assert speaking <= HTTP_UNITS, f"HTTP below the edge: {sorted(speaking - HTTP_UNITS)}"
