"""Convexity verdicts with their evidence, and stationary-point classification (the seed's examples)."""

import pytest

from service.errors import InvalidInput
from service.optlab.convexity import check_box, check_convexity, classify_stationary_point
from service.optlab.functions import resolve_objective


def convexity(function: str, box: list[list[float]]):
    objective = resolve_objective(function, len(box))
    return objective, check_convexity(objective, check_box(box, objective.dimension), samples=128)


@pytest.mark.parametrize(
    ("function", "box"),
    [
        ("x**2", [[-3.0, 3.0]]),
        ("cosh(0.5*x)", [[-10.0, 10.0]]),
        ("exp(0.5*x)", [[-2.0, 2.0]]),
        ("x1**2 + 2*x2**2", [[-5.0, 5.0], [-5.0, 5.0]]),
        ("abs(x1) + abs(x2)", [[-1.0, 1.0], [-1.0, 1.0]]),
        ("x**3", [[0.0, 2.0]]),  # convex where x >= 0
    ],
)
def test_convex_functions_are_judged_convex(function, box):
    _, result = convexity(function, box)
    assert result["convex"] is True
    assert result["counterexample"] is None
    assert result["min_hessian_eigenvalue"]["value"] >= -1e-9


@pytest.mark.parametrize(
    ("function", "box"),
    [
        ("x**3", [[-2.0, 2.0]]),
        ("cos(pi*x)", [[-1.0, 1.0]]),  # the seed's nonconvex example
        ("x*cos(0.15*pi*x)", [[-13.0, 13.0]]),
        ("x1**2 - x2**2", [[-1.0, 1.0], [-1.0, 1.0]]),
        ("rastrigin", [[-5.12, 5.12], [-5.12, 5.12]]),
        ("-abs(x)", [[-1.0, 1.0]]),  # flat Hessian almost everywhere: found by the pair search
    ],
)
def test_nonconvex_functions_come_with_a_counterexample_that_holds(function, box):
    objective, result = convexity(function, box)
    assert result["convex"] is False
    example = result["counterexample"]
    lam, x, x_prime = example["lambda"], example["x"], example["x_prime"]
    assert 0 < lam < 1
    for point in (x, x_prime):
        assert all(lo <= v <= hi for v, (lo, hi) in zip(point, box, strict=True))
    mid = [lam * a + (1 - lam) * b for a, b in zip(x, x_prime, strict=True)]
    assert mid == pytest.approx(example["point"])
    lhs, rhs = objective.value(mid), lam * objective.value(x) + (1 - lam) * objective.value(x_prime)
    assert lhs > rhs  # Jensen's inequality fails, recomputed here
    assert example["f_point"] == pytest.approx(lhs) and example["chord"] == pytest.approx(rhs)


def test_negative_curvature_is_located():
    _, result = convexity("x**3", [[-2.0, 2.0]])
    assert result["min_hessian_eigenvalue"] == {"value": pytest.approx(-12.0), "at": [pytest.approx(-2.0)]}


def test_box_must_match_the_function():
    objective = resolve_objective("bowl")
    with pytest.raises(InvalidInput, match="2 coordinates"):
        check_box([[0.0, 1.0]], objective.dimension)
    with pytest.raises(InvalidInput, match="low < high"):
        check_box([[1.0, 0.0], [0.0, 1.0]], objective.dimension)


def test_undefined_regions_are_counted_not_fatal():
    _, result = convexity("log(x)", [[-1.0, 1.0]])
    assert result["undefined_points"] > 0
    assert result["convex"] is False  # log is concave where it is defined


@pytest.mark.parametrize(
    ("function", "x", "expected"),
    [
        ("x**3", [0.0], "degenerate"),  # the seed's example: f' = f'' = 0
        ("x1**2 - x2**2", [0.0, 0.0], "saddle"),  # the seed's saddle
        ("x1**2 + 2*x2**2", [0.0, 0.0], "minimum"),
        ("-(x1**2) - x2**2", [0.0, 0.0], "maximum"),
        ("x**2", [1.0], "not_stationary"),
        ("x1**4 + x2**2", [0.0, 0.0], "degenerate"),
        ("himmelblau", [3.0, 2.0], "minimum"),
        ("rosenbrock", [1.0, 1.0], "minimum"),
    ],
)
def test_stationary_points_are_classified(function, x, expected):
    result = classify_stationary_point(resolve_objective(function, len(x)), x)
    assert result["classification"] == expected


def test_saddle_reports_gradient_and_eigenvalues():
    result = classify_stationary_point(resolve_objective("saddle"), [0.0, 0.0])
    assert result["grad_norm"] == 0.0
    assert result["hessian_eigenvalues"] == [-2.0, 2.0]


def test_a_box_where_nothing_is_defined_gives_no_verdict():
    objective = resolve_objective("log(x)", 1)
    with pytest.raises(InvalidInput, match="not finite"):
        check_convexity(objective, check_box([[-2.0, -1.0]], 1), samples=16)


def test_huge_hessians_are_refused_or_judged_never_crash():
    objective = resolve_objective("exp(x1**2) * x2**3", 2)
    result = check_convexity(objective, check_box([[-26.0, 26.0], [-1.0, 1.0]], 2), samples=64)
    assert result["convex"] is False


def test_stationary_point_outside_the_domain_is_refused():
    with pytest.raises(InvalidInput, match="not finite"):
        classify_stationary_point(resolve_objective("log(x)", 1), [-1.0])
