"""Constrained minimization over a ball or a half-space: projection, penalty and the Lagrangian.

Constraint c(x) ≤ 0 with c(x) = ‖x − center‖ − radius (ball) or c(x) = a·x − b (half-space).
- projected_gd: x ← Proj(x − η∇f(x)), the Euclidean projection onto the set.
- penalty: gradient descent on f(x) + (μ/2)·max(0, c(x))².
- lagrangian: descent in x and ascent in α ≥ 0 on L(x, α) = f(x) + α·c(x).
"""

import math

from service.errors import InvalidInput
from service.optlab.budget import check_budget
from service.optlab.functions import Objective
from service.optlab.numbers import DIVERGENCE_BOUND, finite_list, finite_or_none
from service.optlab.results import ConstrainedPoint, ConstrainedRun, StepNote
from service.optlab.sets import Ball, HalfSpace, Method


def minimize_constrained(
    objective: Objective,
    constraint: Ball | HalfSpace,
    x0: list[float],
    *,
    method: Method,
    lr: float,
    steps: int,
    penalty: float = 10.0,
) -> ConstrainedRun:
    """Run the method from x0; JSON-ready points with f, c(x) and (lagrangian) the multiplier α."""
    constraint.check(objective.dimension)
    if len(x0) != objective.dimension:
        raise InvalidInput(f"x0 has {len(x0)} coordinates but the function has {objective.dimension}")
    x, alpha = list(x0), 0.0
    points: list[ConstrainedPoint] = []
    diverged: StepNote | None = None
    for k in range(steps + 1):
        check_budget()
        f, g = objective.value_and_grad(x)
        c = constraint.value(x)
        points.append(_point(k, x, f, g, c, alpha if method == "lagrangian" else None))
        if not (math.isfinite(f) and all(map(math.isfinite, g))) or any(abs(v) > DIVERGENCE_BOUND for v in x):
            diverged = {"step": k, "reason": "a value became non-finite or left the bound"}
            break
        if k == steps:
            break
        x, alpha = _step(method, constraint, x, g, c, alpha, lr, penalty)
    final = points[-1]
    return {
        "method": method,
        "points": points,
        "diverged": diverged,
        "final": {"x": final["x"], "f": final["f"], "constraint": final["constraint"], "feasible": final["feasible"]},
    }


def _step(
    method: Method,
    constraint: Ball | HalfSpace,
    x: list[float],
    g: list[float],
    c: float,
    alpha: float,
    lr: float,
    penalty: float,
) -> tuple[list[float], float]:
    if method == "projected_gd":
        return constraint.project([v - lr * gi for v, gi in zip(x, g, strict=True)]), alpha
    dc = constraint.gradient(x)
    if method == "penalty":
        weight = penalty * max(0.0, c)
        return [v - lr * (gi + weight * d) for v, gi, d in zip(x, g, dc, strict=True)], alpha
    new_x = [v - lr * (gi + alpha * d) for v, gi, d in zip(x, g, dc, strict=True)]
    return new_x, max(0.0, alpha + lr * c)


def _point(step: int, x: list[float], f: float, g: list[float], c: float, alpha: float | None) -> ConstrainedPoint:
    point: ConstrainedPoint = {
        "step": step,
        "x": finite_list(x),
        "f": finite_or_none(f),
        "grad": finite_list(g),
        "constraint": finite_or_none(c),
        "feasible": bool(c <= 1e-9),
    }
    if alpha is not None:
        point["alpha"] = alpha
    return point
