"""Symbolic derivatives of expression trees, for the compiled fast path (autograd stays the reference).

The rules are the ones autograd applies node by node, so both give the same numbers; zero and one are folded
as the tree is built to keep it small, and a node budget stops derivatives that would grow too large (the
caller then falls back to autograd).
"""

from service.optlab.expressions import Bin, Call, Neg, Node, Num, Var, fold_bin, fold_call, fold_neg

ZERO = Num(0.0)
ONE = Num(1.0)


class TooLarge(Exception):
    """The derivative would exceed the node budget."""


class _Deriver:
    """d(tree)/d(x_index), counting the nodes it creates against `budget`."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def _spend(self) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise TooLarge

    def add(self, a: Node, b: Node) -> Node:
        self._spend()
        if a == ZERO:
            return b
        if b == ZERO:
            return a
        return fold_bin("+", a, b)

    def sub(self, a: Node, b: Node) -> Node:
        self._spend()
        if b == ZERO:
            return a
        if a == ZERO:
            return fold_neg(b)
        return fold_bin("-", a, b)

    def mul(self, a: Node, b: Node) -> Node:
        self._spend()
        if ZERO in (a, b):
            return ZERO
        if a == ONE:
            return b
        if b == ONE:
            return a
        return fold_bin("*", a, b)

    def div(self, a: Node, b: Node) -> Node:
        self._spend()
        if a == ZERO:
            return ZERO
        return a if b == ONE else fold_bin("/", a, b)

    def call(self, func: str, a: Node) -> Node:
        self._spend()
        return fold_call(func, a)

    def derive(self, node: Node, index: int) -> Node:
        self._spend()
        if isinstance(node, Num):
            return ZERO
        if isinstance(node, Var):
            return ONE if node.index == index else ZERO
        if isinstance(node, Neg):
            inner = self.derive(node.operand, index)
            return ZERO if inner == ZERO else fold_neg(inner)
        if isinstance(node, Call):
            inner = self.derive(node.arg, index)
            return ZERO if inner == ZERO else self.mul(self._outer(node.func, node.arg), inner)
        return self._binary(node, index)

    def _binary(self, node: Bin, index: int) -> Node:
        u, v = node.left, node.right
        du, dv = self.derive(u, index), self.derive(v, index)
        if node.op == "+":
            return self.add(du, dv)
        if node.op == "-":
            return self.sub(du, dv)
        if node.op == "*":
            return self.add(self.mul(du, v), self.mul(u, dv))
        if node.op == "/":
            return self.sub(self.div(du, v), self.div(self.mul(u, dv), self.mul(v, v)))
        return self._power(u, v, du, dv)

    def _power(self, u: Node, v: Node, du: Node, dv: Node) -> Node:
        if isinstance(v, Num):  # c * u**(c-1) * du, the common case
            if du == ZERO:
                return ZERO
            if v.value == 2.0:
                return self.mul(self.mul(Num(2.0), u), du)
            reduced = ONE if v.value == 1.0 else fold_bin("**", u, Num(v.value - 1.0))
            return self.mul(self.mul(v, reduced), du)
        power = fold_bin("**", u, v)
        by_exponent = self.mul(dv, self.call("log", u))
        by_base = self.mul(v, self.div(du, u))
        return self.mul(power, self.add(by_exponent, by_base))

    def _outer(self, func: str, a: Node) -> Node:
        """The derivative of func evaluated at a."""
        if func == "sin":
            return self.call("cos", a)
        if func == "cos":
            return fold_neg(self.call("sin", a))
        if func == "tan":
            cos = self.call("cos", a)
            return self.div(ONE, self.mul(cos, cos))
        if func in ("exp", "cosh", "sinh"):
            return self.call({"exp": "exp", "cosh": "sinh", "sinh": "cosh"}[func], a)
        if func == "log":
            return self.div(ONE, a)
        if func == "sqrt":
            return self.div(ONE, self.mul(Num(2.0), self.call("sqrt", a)))
        if func == "abs":
            return self.call("sign", a)
        if func == "tanh":
            tanh = self.call("tanh", a)
            return self.sub(ONE, self.mul(tanh, tanh))
        return ZERO  # sign: flat almost everywhere, and autograd says 0


def gradient_trees(tree: Node, dimension: int, budget: int = 20_000) -> list[Node]:
    """∂tree/∂x_i for each coordinate; raises TooLarge past `budget` nodes."""
    deriver = _Deriver(budget)
    return [deriver.derive(tree, i) for i in range(dimension)]


def hessian_trees(gradient: list[Node], budget: int = 40_000) -> list[list[Node]]:
    """∂²tree/∂x_i∂x_j from the gradient trees; raises TooLarge past `budget` nodes."""
    deriver = _Deriver(budget)
    n = len(gradient)
    return [[deriver.derive(gradient[i], j) for j in range(n)] for i in range(n)]
