"""The objective-function language: a whitelist parser that walks Python's `ast` node by node.

Grammar: numbers, the variable `x` (1-D) or `x1`, `x2`, ... (n-D), `pi`, `e`, `+ - * / **` (`^` means `**`),
unary minus, parentheses and the calls `sin cos tan exp log sqrt abs cosh sinh tanh`. Nothing is ever handed
to `eval`/`exec`: every accepted construct is rebuilt as one of the small node classes below, and everything
else is refused with `InvalidInput` (HTTP 422).
"""

import ast
import re
from dataclasses import dataclass

from service.errors import InvalidInput
from service.optlab import floatmath

FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "sqrt", "abs", "cosh", "sinh", "tanh")
CONSTANTS = {"pi": floatmath.PI, "e": floatmath.E}
BINARY_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_INDEXED = re.compile(r"x([1-9][0-9]{0,2})")


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Var:
    index: int  # 0-based coordinate


@dataclass(frozen=True)
class Neg:
    operand: "Node"


@dataclass(frozen=True)
class Bin:
    op: str  # one of BINARY_OPS' values
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Call:
    func: str  # one of FUNCTIONS
    arg: "Node"


Node = Num | Var | Neg | Bin | Call


@dataclass(frozen=True)
class Limits:
    """Bounds on what a client may send; each violation is a 422."""

    max_length: int = 500
    max_depth: int = 40
    max_exponent: float = 100.0
    max_dimension: int = 16


@dataclass(frozen=True)
class Expression:
    """A parsed objective: its tree, its source and how many coordinates it reads."""

    source: str
    tree: Node
    dimension: int  # 1 for `x`; the largest index for `x1..xn` (0 for a constant)
    style: str  # "x" (1-D name), "indexed" (x1..xn) or "none"


def parse_expression(source: str, limits: Limits | None = None) -> Expression:
    """Parse `source` into an `Expression`, or raise `InvalidInput` saying why not."""
    limits = limits or Limits()
    if len(source) > limits.max_length:
        raise InvalidInput(f"expression is {len(source)} characters long; the limit is {limits.max_length}")
    if not source.strip():
        raise InvalidInput("expression is empty")
    # `^` has no other meaning here; replacing it keeps Python's precedence right (x^2+1 is (x**2)+1).
    text = source.replace("^", "**")
    try:
        parsed = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise InvalidInput(f"expression is not valid syntax: {exc.__class__.__name__}") from None
    builder = _Builder(limits)
    tree = builder.build(parsed.body, depth=1)
    if builder.styles == {"x", "indexed"}:
        raise InvalidInput("use either `x` (one dimension) or `x1`, `x2`, ... (several), not both")
    style = next(iter(builder.styles), "none")
    dimension = 1 if style == "x" else builder.max_index + 1
    return Expression(source=source, tree=tree, dimension=dimension, style=style)


class _Builder:
    """Turns whitelisted `ast` nodes into our nodes, folding constants and enforcing the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.styles: set[str] = set()
        self.max_index = -1

    def build(self, node: ast.AST, depth: int) -> Node:
        if depth > self.limits.max_depth:
            raise InvalidInput(f"expression is nested more than {self.limits.max_depth} levels deep")
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.build(node.operand, depth + 1)
            return operand if isinstance(node.op, ast.UAdd) else fold_neg(operand)
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPS:
            left = self.build(node.left, depth + 1)
            right = self.build(node.right, depth + 1)
            op = BINARY_OPS[type(node.op)]
            if op == "**":
                self._check_exponent(right)
            return fold_bin(op, left, right)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise InvalidInput(f"not allowed in an expression: {_describe(node)}")

    def _constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"only real numbers are allowed as constants, not {type(value).__name__}")
        try:
            number = float(value)
        except OverflowError:
            raise InvalidInput("number is too large") from None
        if not floatmath.isfinite(number):
            raise InvalidInput("number is too large")
        return Num(number)

    def _name(self, node: ast.Name) -> Node:
        name = node.id
        if "_" in name:
            raise InvalidInput(f"names with underscores are not allowed: {name!r}")
        if name in CONSTANTS:
            return Num(CONSTANTS[name])
        if name == "x":
            self.styles.add("x")
            self.max_index = max(self.max_index, 0)
            return Var(0)
        match = _INDEXED.fullmatch(name)
        if match is None:
            raise InvalidInput(f"unknown name {name!r}: use x or x1, x2, ..., pi, e")
        index = int(match.group(1))
        if index > self.limits.max_dimension:
            raise InvalidInput(f"{name} exceeds the dimension limit of {self.limits.max_dimension}")
        self.styles.add("indexed")
        self.max_index = max(self.max_index, index - 1)
        return Var(index - 1)

    def _call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise InvalidInput(f"only these functions may be called: {', '.join(FUNCTIONS)}")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise InvalidInput(f"{node.func.id}() takes exactly one positional argument")
        return fold_call(node.func.id, self.build(node.args[0], depth + 1))

    def _check_exponent(self, exponent: Node) -> None:
        if isinstance(exponent, Num) and not abs(exponent.value) <= self.limits.max_exponent:
            raise InvalidInput(f"exponent {exponent.value:g} exceeds the limit of {self.limits.max_exponent:g}")


def _describe(node: ast.AST) -> str:
    """A short client-facing name for a refused construct."""
    names = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripts",
        ast.Lambda: "lambdas",
        ast.IfExp: "conditional expressions",
        ast.ListComp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.GeneratorExp: "comprehensions",
        ast.Compare: "comparisons",
        ast.BoolOp: "boolean operators",
        ast.NamedExpr: "assignment expressions",
    }
    return names.get(type(node), type(node).__name__)


def fold_neg(operand: Node) -> Node:
    """-operand, folded when it is a number."""
    if isinstance(operand, Num):
        return Num(-operand.value)
    if isinstance(operand, Neg):
        return operand.operand
    return Neg(operand)


def fold_bin(op: str, left: Node, right: Node) -> Node:
    """left <op> right, folded when both are numbers."""
    if isinstance(left, Num) and isinstance(right, Num):
        return Num(floatmath.binary(op, left.value, right.value))
    return Bin(op, left, right)


def fold_call(func: str, arg: Node) -> Node:
    """func(arg), folded when arg is a number."""
    if isinstance(arg, Num):
        return Num(floatmath.unary(func, arg.value))
    return Call(func, arg)
