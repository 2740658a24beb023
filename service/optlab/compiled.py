"""Turn expression trees into callables: nested closures over Python floats, or over torch tensors.

No source text is generated and nothing is evaluated by Python's compiler: each node becomes a small closure
that calls its children's closures.
"""

import operator
from collections.abc import Callable, Sequence

import torch

from service.optlab import floatmath
from service.optlab.expressions import Bin, Call, Neg, Node, Num, Var

FloatFn = Callable[[Sequence[float]], float]
TorchFn = Callable[[torch.Tensor], torch.Tensor | float]


def compile_float(node: Node) -> FloatFn:
    """A closure computing the tree at a point given as a sequence of floats."""
    if isinstance(node, Num):
        value = node.value
        return lambda x: value
    if isinstance(node, Var):
        return operator.itemgetter(node.index)
    if isinstance(node, Neg):
        inner = compile_float(node.operand)
        return lambda x: -inner(x)
    if isinstance(node, Call):
        fn, arg = floatmath.UNARY[node.func], compile_float(node.arg)
        return lambda x: fn(arg(x))
    return _compile_float_binary(node)


def _compile_float_binary(node: Bin) -> FloatFn:
    left, right = compile_float(node.left), compile_float(node.right)
    if node.op == "+":
        return lambda x: left(x) + right(x)
    if node.op == "-":
        return lambda x: left(x) - right(x)
    if node.op == "*":
        if isinstance(node.left, Num):  # c * u is the common shape: one call fewer
            c = node.left.value
            return lambda x: c * right(x)
        return lambda x: left(x) * right(x)
    if node.op == "/":
        return lambda x: floatmath.div(left(x), right(x))
    if isinstance(node.right, Num) and node.right.value == 2.0:
        return lambda x: _square(left(x))
    power = floatmath.power
    return lambda x: power(left(x), right(x))


def _square(v: float) -> float:
    return v * v  # float multiplication overflows to inf instead of raising


TORCH_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "cosh": torch.cosh,
    "sinh": torch.sinh,
    "tanh": torch.tanh,
    "sign": torch.sign,
}


def compile_torch(node: Node) -> Callable[[torch.Tensor], torch.Tensor]:
    """A closure computing the tree on a float64 tensor of points, shape (..., n) -> (...)."""
    inner = _compile_torch(node)

    def evaluate(x: torch.Tensor) -> torch.Tensor:
        out = inner(x)
        if isinstance(out, torch.Tensor):
            return out
        return torch.full(x.shape[:-1], out, dtype=x.dtype, device=x.device) + 0.0 * x.sum(-1)

    return evaluate


def _compile_torch(node: Node) -> TorchFn:
    if isinstance(node, Num):
        value = node.value
        return lambda x: value
    if isinstance(node, Var):
        index = node.index
        return lambda x: x[..., index]
    if isinstance(node, Neg):
        inner = _compile_torch(node.operand)
        return lambda x: -inner(x)
    if isinstance(node, Call):
        fn, arg = TORCH_UNARY[node.func], _compile_torch(node.arg)
        return lambda x: fn(_as_tensor(arg(x), x))
    left, right = _compile_torch(node.left), _compile_torch(node.right)
    ops: dict[str, Callable[[torch.Tensor | float, torch.Tensor | float], torch.Tensor | float]] = {
        "+": operator.add,
        "-": operator.sub,
        "*": operator.mul,
        "/": operator.truediv,
    }
    if node.op in ops:
        op = ops[node.op]
        return lambda x: op(left(x), right(x))
    return lambda x: torch.pow(_as_tensor(left(x), x), right(x))


def _as_tensor(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.full(like.shape[:-1], value, dtype=like.dtype, device=like.device)
