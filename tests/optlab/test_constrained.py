"""Constrained minimization: projection, penalty and Lagrangian reach the constrained optimum."""

import math

import pytest
from pydantic import ValidationError

from service.errors import InvalidInput
from service.optlab.constrained import minimize_constrained
from service.optlab.functions import resolve_objective
from service.optlab.sets import Ball, HalfSpace

TARGET = "(x1 - 2)**2 + (x2 - 2)**2"  # unconstrained minimum (2, 2), outside both sets
BALL = Ball(kind="ball", center=[0.0, 0.0], radius=1.0)  # optimum (1/√2, 1/√2)
HALFSPACE = HalfSpace(kind="halfspace", normal=[1.0, 1.0], offset=1.0)  # optimum (1/2, 1/2)


def run(constraint: Ball | HalfSpace, method: str, steps: int = 200, **kw):
    return minimize_constrained(
        resolve_objective(TARGET, 2), constraint, [0.0, 0.0], method=method, steps=steps, lr=kw.pop("lr", 0.1), **kw
    )


@pytest.mark.parametrize(("constraint", "optimum"), [(BALL, [1 / math.sqrt(2)] * 2), (HALFSPACE, [0.5, 0.5])])
def test_projected_gradient_descent_stays_feasible_and_converges(constraint, optimum):
    result = run(constraint, "projected_gd")
    assert all(p["feasible"] for p in result["points"])
    assert result["final"]["x"] == pytest.approx(optimum, abs=1e-9)
    assert len(result["points"]) == 201


@pytest.mark.parametrize(("constraint", "optimum"), [(BALL, [1 / math.sqrt(2)] * 2), (HALFSPACE, [0.5, 0.5])])
def test_lagrangian_reaches_the_optimum_with_a_positive_multiplier(constraint, optimum):
    result = run(constraint, "lagrangian", steps=2000, lr=0.05)
    assert result["final"]["x"] == pytest.approx(optimum, abs=1e-4)
    assert result["points"][-1]["alpha"] > 0


def test_penalty_approaches_the_optimum_as_the_weight_grows():
    gaps = []
    for weight in (1.0, 10.0, 100.0):
        result = run(HALFSPACE, "penalty", steps=3000, lr=0.004, penalty=weight)
        gaps.append(abs(result["final"]["x"][0] - 0.5))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.02


def test_constraint_fields_are_checked():
    with pytest.raises(ValidationError, match="center"):
        Ball.model_validate({"kind": "ball", "radius": 1.0})  # the schema says which fields each kind needs
    with pytest.raises(InvalidInput, match="must not be zero"):
        run(HalfSpace(kind="halfspace", normal=[0.0, 0.0], offset=1.0), "projected_gd")
    with pytest.raises(InvalidInput, match="3 coordinates"):
        run(Ball(kind="ball", center=[0.0, 0.0, 0.0], radius=1.0), "projected_gd")


def test_a_normal_whose_square_underflows_is_refused_as_zero():
    with pytest.raises(InvalidInput, match="must not be zero"):
        run(HalfSpace(kind="halfspace", normal=[1e-200, 0.0], offset=0.0), "projected_gd")
