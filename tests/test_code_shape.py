"""The code stays in pieces a reader can hold: no function over 40 lines, no module over 400, in service/ and models/.

Counted with the AST: a function runs from its `def` line to its last line (docstring included, decorators not).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 40
MAX_MODULE_LINES = 400


def python_files() -> list[Path]:
    return sorted(p for package in ("service", "models") for p in (ROOT / package).rglob("*.py"))


def long_functions(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_the_scan_sees_the_tree():
    names = {p.relative_to(ROOT).as_posix() for p in python_files()}
    assert {"service/main.py", "models/resnet.py", "service/worker/leases.py"} <= names


def test_the_scan_catches_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}", "x.py") == [f"x.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]
    assert long_functions("def g():\n    return 1\n", "x.py") == []


def test_no_function_over_40_lines():
    offenders = [f for p in python_files() for f in long_functions(p.read_text(), p.relative_to(ROOT).as_posix())]
    assert offenders == []


def test_no_module_over_400_lines():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in python_files()}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
