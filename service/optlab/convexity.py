"""Convexity on a box (sampled Hessians plus a Jensen-inequality search) and stationary-point classification.

Both use autograd Hessians in float64. A verdict of "not convex" always comes with a concrete counterexample
(x, x′, λ) with f(λx + (1−λ)x′) > λf(x) + (1−λ)f(x′), whose numbers are in the answer; "convex" means no
negative curvature and no counterexample was found among the samples.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from service.errors import InvalidInput
from service.optlab.budget import check_budget
from service.optlab.functions import Objective
from service.optlab.numbers import finite_list, finite_or_none
from service.optlab.results import ConvexityVerdict, JensenCounterexample, StationaryPointAnalysis

BOX_LIMIT = 1e6
LAMBDAS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class _Curvature:
    """The most negative Hessian eigenvalue among the sampled points, where, and along which direction."""

    value: float
    at: list[float]
    direction: torch.Tensor
    undefined: int  # sampled points where f or its Hessian is not finite


def check_box(box: Sequence[Sequence[float]], dimension: int) -> torch.Tensor:
    """The box as a (n, 2) tensor; raises InvalidInput unless it is finite, ordered and of the right size."""
    if len(box) != dimension:
        raise InvalidInput(f"box has {len(box)} intervals but the function has {dimension} coordinates")
    for interval in box:
        if len(interval) != 2:
            raise InvalidInput("each box interval is [low, high]")
        low, high = float(interval[0]), float(interval[1])
        if not (math.isfinite(low) and math.isfinite(high) and -BOX_LIMIT <= low < high <= BOX_LIMIT):
            raise InvalidInput(f"box interval [{low}, {high}] must be finite, low < high, within ±{BOX_LIMIT:g}")
    return torch.tensor([[float(v) for v in interval] for interval in box], dtype=torch.float64)


def check_convexity(objective: Objective, box: torch.Tensor, samples: int = 256, seed: int = 0) -> ConvexityVerdict:
    """Look for negative curvature and a Jensen counterexample inside the box."""
    generator = torch.Generator().manual_seed(seed)
    low, high = box[:, 0], box[:, 1]
    points = low + (high - low) * torch.rand((samples, objective.dimension), generator=generator, dtype=torch.float64)
    points = torch.cat([points, ((low + high) / 2)[None], low[None], high[None]])
    eigen = _min_eigen(objective, points)
    check_budget()
    counterexample = _jensen_along_eigenvector(objective, eigen, low, high)
    if counterexample is None:
        counterexample = _jensen_random_pairs(objective, low, high, samples, generator)
    if eigen is None and counterexample is None:
        raise InvalidInput("the Hessian is not finite (or not computable) anywhere sampled in the box")
    tolerance = 1e-9 * (1 + abs(eigen.value)) if eigen else 0.0
    negative = eigen is not None and eigen.value < -tolerance
    return {
        "convex": counterexample is None and not negative,
        "method": f"autograd Hessians at {len(points)} points and Jensen's inequality on sampled pairs",
        "min_hessian_eigenvalue": None if eigen is None else {"value": eigen.value, "at": eigen.at},
        "undefined_points": eigen.undefined if eigen else len(points),
        "counterexample": counterexample,
    }


def _min_eigen(objective: Objective, points: torch.Tensor) -> _Curvature | None:
    hessians = objective.batch_hessians(points)
    # autograd's formulas stay finite outside f's domain (d²/dx² log x at x < 0), so f must be finite too
    defined = torch.isfinite(hessians).flatten(1).all(1) & torch.isfinite(objective.batch_values(points))
    if not bool(defined.any()):
        return None
    try:
        eigenvalues, eigenvectors = torch.linalg.eigh(hessians[defined])
    except RuntimeError:  # LAPACK gives up on entries near the float64 range
        return None
    if not bool(torch.isfinite(eigenvalues).all()):
        return None
    smallest = eigenvalues[:, 0]
    best = int(torch.argmin(smallest))
    return _Curvature(
        value=float(smallest[best]),
        at=points[defined][best].tolist(),
        direction=eigenvectors[best][:, 0],
        undefined=int((~defined).sum()),
    )


def _jensen_along_eigenvector(
    objective: Objective, eigen: _Curvature | None, low: torch.Tensor, high: torch.Tensor
) -> JensenCounterexample | None:
    if eigen is None or eigen.value >= 0:
        return None
    center = torch.tensor(eigen.at, dtype=torch.float64)
    direction = eigen.direction
    width = float((high - low).max())
    for fraction in (0.25, 0.1, 0.03, 0.01, 1e-3, 1e-4):
        x = torch.clamp(center - fraction * width * direction, low, high)
        x_prime = torch.clamp(center + fraction * width * direction, low, high)
        check_budget()
        found = _jensen(objective, x[None], x_prime[None], 0.5)
        if found is not None:
            return found
    return None


def _jensen_random_pairs(
    objective: Objective, low: torch.Tensor, high: torch.Tensor, samples: int, generator: torch.Generator
) -> JensenCounterexample | None:
    shape = (samples * 4, objective.dimension)
    x = low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)
    x_prime = low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)
    for lam in LAMBDAS:
        check_budget()
        found = _jensen(objective, x, x_prime, lam)
        if found is not None:
            return found
    return None


def _jensen(objective: Objective, x: torch.Tensor, x_prime: torch.Tensor, lam: float) -> JensenCounterexample | None:
    """The pair (of the rows given) that violates Jensen's inequality the most, if any does."""
    mid = lam * x + (1 - lam) * x_prime
    lhs = objective.batch_values(mid)
    rhs = lam * objective.batch_values(x) + (1 - lam) * objective.batch_values(x_prime)
    gap = lhs - rhs
    margin = 1e-9 * (1 + lhs.abs() + rhs.abs())
    valid = torch.isfinite(gap) & (gap > margin)
    if not bool(valid.any()):
        return None
    best = int(torch.argmax(torch.where(valid, gap, torch.full_like(gap, -math.inf))))
    return {
        "x": x[best].tolist(),
        "x_prime": x_prime[best].tolist(),
        "lambda": lam,
        "point": mid[best].tolist(),
        "f_point": float(lhs[best]),
        "chord": float(rhs[best]),
        "gap": float(gap[best]),
        "holds": True,
        "inequality": "f(λx + (1−λ)x′) > λf(x) + (1−λ)f(x′)",
    }


def classify_stationary_point(objective: Objective, x: Sequence[float], tol: float = 1e-6) -> StationaryPointAnalysis:
    """Gradient norm, Hessian eigenvalues and minimum / maximum / saddle / degenerate (or not stationary)."""
    value, grad = objective.value_and_grad(x, "autograd")
    hessian = torch.tensor(objective.hessian(x, "autograd"), dtype=torch.float64)
    grad_norm = math.hypot(*grad)
    if not (math.isfinite(value) and math.isfinite(grad_norm) and bool(torch.isfinite(hessian).all())):
        raise InvalidInput("the function or its derivatives are not finite at this point")
    try:
        eigenvalues = torch.linalg.eigvalsh(hessian).tolist()
    except RuntimeError:  # LAPACK gives up on entries near the float64 range
        raise InvalidInput("the Hessian at this point is too large to analyse") from None
    return {
        "x": list(x),
        "f": finite_or_none(value),
        "grad": finite_list(grad),
        "grad_norm": grad_norm,
        "hessian": hessian.tolist(),
        "hessian_eigenvalues": eigenvalues,
        "classification": _classify(grad_norm, eigenvalues, tol),
        "tolerance": tol,
    }


def _classify(grad_norm: float, eigenvalues: list[float], tol: float) -> str:
    if grad_norm > tol:
        return "not_stationary"
    positive = any(v > tol for v in eigenvalues)
    negative = any(v < -tol for v in eigenvalues)
    if positive and negative:
        return "saddle"
    if all(v > tol for v in eigenvalues):
        return "minimum"
    if all(v < -tol for v in eigenvalues):
        return "maximum"
    return "degenerate"
