"""Objective functions: the book's presets, and `Objective`, which evaluates one by either backend.

Backends: "autograd" evaluates the torch closure in float64 and differentiates it with torch.autograd (the
reference); "compiled" evaluates symbolic derivatives as closures over Python floats, which avoids the
per-step autograd overhead on long trajectories. Tests check that both agree.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from service.errors import InvalidInput
from service.optlab.compiled import FloatFn, compile_float, compile_torch
from service.optlab.derivatives import TooLarge, gradient_trees, hessian_trees
from service.optlab.expressions import Expression, Limits, Node, parse_expression
from service.optlab.requests import Backend


@dataclass(frozen=True)
class Preset:
    """A named function of the book's optimization chapter."""

    name: str
    expression: str
    x0: tuple[float, ...]
    box: tuple[tuple[float, float], ...]
    note: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("square", "x**2", (10.0,), ((-10.0, 10.0),), "f(x) = x², gradient descent's first example"),
        Preset("cos_wave", "x*cos(0.15*pi*x)", (10.0,), ((-13.0, 13.0),), "nonconvex: x·cos(cx), c = 0.15π"),
        Preset("cosh", "cosh(0.5*x)", (10.0,), ((-10.0, 10.0),), "convex, Newton's method converges"),
        Preset("bowl", "x1**2 + 2*x2**2", (-5.0, -2.0), ((-5.5, 1.0), (-3.0, 1.5)), "2-D quadratic"),
        Preset(
            "ill_conditioned",
            "0.1*x1**2 + 2*x2**2",
            (-5.0, -2.0),
            ((-5.5, 1.0), (-3.0, 1.5)),
            "the momentum chapter's badly conditioned quadratic",
        ),
        Preset("cubic", "x**3", (1.0,), ((-2.0, 2.0),), "a degenerate stationary point at 0"),
        Preset("saddle", "x1**2 - x2**2", (1.0, 0.1), ((-1.0, 1.0), (-1.0, 1.0)), "a saddle point at 0"),
        Preset(
            "rosenbrock",
            "(1 - x1)**2 + 100*(x2 - x1**2)**2",
            (-1.5, 2.0),
            ((-2.0, 2.0), (-1.0, 3.0)),
            "banana valley, minimum at (1, 1)",
        ),
        Preset(
            "rastrigin",
            "20 + x1**2 - 10*cos(2*pi*x1) + x2**2 - 10*cos(2*pi*x2)",
            (3.2, -2.7),
            ((-5.12, 5.12), (-5.12, 5.12)),
            "many local minima, global minimum at 0",
        ),
        Preset(
            "himmelblau",
            "(x1**2 + x2 - 11)**2 + (x1 + x2**2 - 7)**2",
            (0.0, 0.0),
            ((-5.0, 5.0), (-5.0, 5.0)),
            "four minima of value 0",
        ),
    )
}


@dataclass
class Objective:
    """A parsed function of `dimension` coordinates with value, gradient and Hessian by either backend."""

    expression: Expression
    dimension: int
    torch_fn: Callable[[torch.Tensor], torch.Tensor] = field(init=False)
    _value: FloatFn = field(init=False)
    _grad: list[FloatFn] | None = field(init=False, default=None)
    _grad_trees: list[Node] = field(init=False, default_factory=list)
    _hess: list[list[FloatFn]] | None = field(init=False, default=None)
    # Derivation is attempted once: a tree past the node budget would fail again at every step.
    _grad_tried: bool = field(init=False, default=False)
    _hess_tried: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.torch_fn = compile_torch(self.expression.tree)
        self._value = compile_float(self.expression.tree)

    def value(self, x: Sequence[float]) -> float:
        """f(x) on the compiled path."""
        return self._value(x)

    def value_and_grad(self, x: Sequence[float], backend: Backend = "compiled") -> tuple[float, list[float]]:
        """f(x) and ∇f(x)."""
        if backend == "compiled" and self._ensure_gradient():
            assert self._grad is not None
            return self._value(x), [g(x) for g in self._grad]
        point = torch.tensor(list(x), dtype=torch.float64, requires_grad=True)
        value = self.torch_fn(point)
        (grad,) = torch.autograd.grad(value, point)
        return float(value.detach()), grad.tolist()

    def hessian(self, x: Sequence[float], backend: Backend = "compiled") -> list[list[float]]:
        """∇²f(x)."""
        if backend == "compiled" and self._ensure_hessian():
            assert self._hess is not None
            return [[h(x) for h in row] for row in self._hess]
        point = torch.tensor(list(x), dtype=torch.float64)
        hess = torch.autograd.functional.hessian(self.torch_fn, point)  # type: ignore[no-untyped-call]
        rows: list[list[float]] = hess.reshape(self.dimension, self.dimension).tolist()
        return rows

    def batch_values(self, points: torch.Tensor) -> torch.Tensor:
        """f at each row of a float64 tensor (..., n)."""
        with torch.no_grad():
            return self.torch_fn(points)

    def batch_hessians(self, points: torch.Tensor) -> torch.Tensor:
        """Autograd Hessians at each row of (m, n): shape (m, n, n)."""
        hess = torch.func.vmap(torch.func.hessian(self.torch_fn))
        result: torch.Tensor = hess(points)
        return result

    def _ensure_gradient(self) -> bool:
        if not self._grad_tried:
            self._grad_tried = True
            try:
                trees = gradient_trees(self.expression.tree, self.dimension)
            except (TooLarge, RecursionError):
                return False
            self._grad_trees = trees
            self._grad = [compile_float(t) for t in trees]
        return self._grad is not None

    def _ensure_hessian(self) -> bool:
        if not self._hess_tried and self._ensure_gradient():
            self._hess_tried = True
            try:
                trees = hessian_trees(self._grad_trees)
            except (TooLarge, RecursionError):
                return False
            self._hess = [[compile_float(t) for t in row] for row in trees]
        return self._hess is not None


def resolve_objective(function: str, dimension: int | None = None, limits: Limits | None = None) -> Objective:
    """An `Objective` for a preset name or an expression; `dimension` is the length of the client's point."""
    source = PRESETS[function].expression if function in PRESETS else function
    expression = parse_expression(source, limits)
    limits = limits or Limits()
    if dimension is None:
        dimension = max(expression.dimension, 1)
    if dimension < 1:
        raise InvalidInput("the point needs at least one coordinate")
    if dimension > limits.max_dimension:
        raise InvalidInput(f"dimension {dimension} exceeds the limit of {limits.max_dimension}")
    if expression.style == "x" and dimension != 1:
        raise InvalidInput(f"`x` names a 1-D function but the point has {dimension} coordinates")
    if expression.dimension > dimension:
        raise InvalidInput(f"the function reads x{expression.dimension} but the point has {dimension} coordinate(s)")
    return Objective(expression=expression, dimension=dimension)


def check_point(point: Sequence[float], name: str = "x0") -> list[float]:
    """The point as floats, refusing non-finite coordinates."""
    values = [float(v) for v in point]
    if not values:
        raise InvalidInput(f"{name} must have at least one coordinate")
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"{name} must be finite")
    return values
