"""Trajectories against the book: its printed numbers and its update formulas run as plain Python loops."""

import math

import pytest
import torch

from service.optlab.functions import resolve_objective
from service.optlab.requests import OptimizerConfig
from service.optlab.trajectories import run_trajectory

TOL = 1e-6


def final_x(function: str, x0: list[float], steps: int, backend: str = "compiled", **optimizer) -> list[float]:
    objective = resolve_objective(function, len(x0))
    run = run_trajectory(objective, OptimizerConfig(**optimizer), x0, steps, backend)  # type: ignore[arg-type]
    assert len(run["points"]) == steps + 1
    return run["points"][-1]["x"]


# The book's train_2d loop: start at (-5, -2), apply `update` `steps` times, return (x1, x2).
def book_train_2d(update, steps: int = 20) -> tuple[float, float]:
    x1, x2, s1, s2 = -5.0, -2.0, 0.0, 0.0
    for _ in range(steps):
        x1, x2, s1, s2 = update(x1, x2, s1, s2)
    return x1, x2


def grad_ill(x1: float, x2: float) -> tuple[float, float]:
    return 0.2 * x1, 4 * x2  # f = 0.1 x1² + 2 x2²


@pytest.mark.parametrize(
    ("function", "x0", "steps", "optimizer", "expected"),
    [
        ("x**2", [10.0], 10, {"name": "gd", "lr": 0.2}, [0.060466]),
        ("x1**2 + 2*x2**2", [-5.0, -2.0], 20, {"name": "gd", "lr": 0.1}, [-0.057646, -0.000073]),
        ("cosh(0.5*x)", [10.0], 10, {"name": "newton", "lr": 1.0}, [0.0]),
        (
            "0.1*x1**2 + 2*x2**2",
            [-5.0, -2.0],
            20,
            {"name": "momentum", "lr": 0.6, "momentum": 0.5},
            [0.007188, 0.002553],
        ),
        ("0.1*x1**2 + 2*x2**2", [-5.0, -2.0], 20, {"name": "adagrad", "lr": 0.4}, [-2.382563, -0.158591]),
        # further values the book prints in the same sections
        ("x**2", [10.0], 10, {"name": "gd", "lr": 0.05}, [3.486784]),
        ("x**2", [10.0], 10, {"name": "gd", "lr": 1.1}, [61.917364]),
        ("x*cos(0.15*pi*x)", [10.0], 10, {"name": "gd", "lr": 2.0}, [-1.528166]),
        ("0.1*x1**2 + 2*x2**2", [-5.0, -2.0], 20, {"name": "gd", "lr": 0.4}, [-0.943467, -0.000073]),
        ("0.1*x1**2 + 2*x2**2", [-5.0, -2.0], 20, {"name": "gd", "lr": 0.6}, [-0.387814, -1673.365109]),
        (
            "0.1*x1**2 + 2*x2**2",
            [-5.0, -2.0],
            20,
            {"name": "momentum", "lr": 0.6, "momentum": 0.25},
            [-0.126340, -0.186632],
        ),
        ("0.1*x1**2 + 2*x2**2", [-5.0, -2.0], 20, {"name": "adagrad", "lr": 2.0}, [-0.002295, -0.000000]),
        ("0.1*x1**2 + 2*x2**2", [-5.0, -2.0], 20, {"name": "rmsprop", "lr": 0.4, "gamma": 0.9}, [-0.010599, 0.000000]),
    ],
)
@pytest.mark.parametrize("backend", ["compiled", "autograd"])
def test_reproduces_printed_value(function, x0, steps, optimizer, expected, backend):
    got = final_x(function, x0, steps, backend, **optimizer)
    # The book prints six decimals: agreement to half a unit in the last printed place, and 1e-6 beyond rounding.
    assert got == pytest.approx(expected, abs=5e-7 + 1e-12)


@pytest.mark.parametrize(("lr", "printed"), [(1.0, 26.8341), (0.5, 7.2699)])
def test_newton_on_nonconvex_cosine_matches_book(lr, printed):
    c = 0.15 * math.pi
    x = 10.0
    for _ in range(10):  # the book's newton(eta) with its hand-written f_grad and f_hess
        grad = math.cos(c * x) - c * x * math.sin(c * x)
        hess = -2 * c * math.sin(c * x) - x * c**2 * math.cos(c * x)
        x -= lr * grad / hess
    got = final_x("x*cos(0.15*pi*x)", [10.0], 10, name="newton", lr=lr)[0]
    assert got == pytest.approx(x, abs=TOL)
    assert round(got, 4) == printed


def test_newton_on_cosh_reaches_zero():
    assert abs(final_x("cosh", [10.0], 10, name="newton")[0]) < TOL


def test_rmsprop_matches_book_formula():
    eta, gamma, eps = 0.4, 0.9, 1e-6

    def rmsprop_2d(x1, x2, s1, s2):
        g1, g2 = grad_ill(x1, x2)
        s1 = gamma * s1 + (1 - gamma) * g1**2
        s2 = gamma * s2 + (1 - gamma) * g2**2
        return x1 - eta / math.sqrt(s1 + eps) * g1, x2 - eta / math.sqrt(s2 + eps) * g2, s1, s2

    got = final_x("ill_conditioned", [-5.0, -2.0], 20, name="rmsprop", lr=eta, gamma=gamma)
    assert got == pytest.approx(book_train_2d(rmsprop_2d), abs=TOL)


def test_adadelta_matches_book_formula():
    rho, eps = 0.9, 1e-5  # the seed's adadelta: no learning rate, eps 1e-5

    def adadelta_2d(x1, x2, s, delta):
        g = grad_ill(x1, x2)
        s = [rho * si + (1 - rho) * gi**2 for si, gi in zip(s, g, strict=True)]
        step = [math.sqrt(di + eps) / math.sqrt(si + eps) * gi for di, si, gi in zip(delta, s, g, strict=True)]
        delta = [rho * di + (1 - rho) * st**2 for di, st in zip(delta, step, strict=True)]
        return x1 - step[0], x2 - step[1], s, delta

    x1, x2, s, delta = -5.0, -2.0, [0.0, 0.0], [0.0, 0.0]
    for _ in range(50):
        x1, x2, s, delta = adadelta_2d(x1, x2, s, delta)
    got = final_x("ill_conditioned", [-5.0, -2.0], 50, name="adadelta", rho=rho)
    assert got == pytest.approx([x1, x2], abs=TOL)


def _book_adam(eta: float, steps: int, *, eps_in_sqrt: bool) -> list[float]:
    beta1, beta2, eps = 0.9, 0.999, 1e-6
    x, v, s = [-5.0, -2.0], [0.0, 0.0], [0.0, 0.0]
    for t in range(1, steps + 1):  # bias correction; eps inside sqrt (the book's formulas) or outside (its code)
        g = grad_ill(*x)
        v = [beta1 * vi + (1 - beta1) * gi for vi, gi in zip(v, g, strict=True)]
        s = [beta2 * si + (1 - beta2) * gi**2 for si, gi in zip(s, g, strict=True)]
        s_hat = [si / (1 - beta2**t) for si in s]
        denominators = [math.sqrt(sh + eps) if eps_in_sqrt else math.sqrt(sh) + eps for sh in s_hat]
        x = [xi - eta * (vi / (1 - beta1**t)) / d for xi, vi, d in zip(x, v, denominators, strict=True)]
    return x


def test_adam_defaults_to_eps_inside_the_square_root():
    expected = _book_adam(0.3, 30, eps_in_sqrt=True)
    assert final_x("ill_conditioned", [-5.0, -2.0], 30, name="adam", lr=0.3) == pytest.approx(expected, abs=TOL)


def test_adam_can_add_eps_outside_the_square_root():
    expected = _book_adam(0.3, 30, eps_in_sqrt=False)
    got = final_x("ill_conditioned", [-5.0, -2.0], 30, name="adam", lr=0.3, eps_in_sqrt=False)
    assert got == pytest.approx(expected, abs=TOL)
    assert got != pytest.approx(_book_adam(0.3, 30, eps_in_sqrt=True), abs=1e-9)


def test_preconditioned_gd_matches_formula_and_fixes_conditioning():
    # diag(H) = (0.2, 4): x <- x - eta * g / diag(H) moves every coordinate by the same fraction eta.
    eta = 0.5
    x = [-5.0, -2.0]
    for _ in range(10):
        g = grad_ill(*x)
        x = [xi - eta * gi / hi for xi, gi, hi in zip(x, g, (0.2, 4.0), strict=True)]
    got = final_x("ill_conditioned", [-5.0, -2.0], 10, name="preconditioned_gd", lr=eta)
    assert got == pytest.approx(x, abs=TOL)
    assert got == pytest.approx([-5.0 * 0.5**10, -2.0 * 0.5**10], abs=TOL)


def test_nesterov_matches_torch_formula():
    eta, beta = 0.1, 0.5
    x, v = [-5.0, -2.0], [0.0, 0.0]
    for _ in range(20):
        g = grad_ill(*x)
        v = [beta * vi + gi for vi, gi in zip(v, g, strict=True)]
        x = [xi - eta * (gi + beta * vi) for xi, gi, vi in zip(x, g, v, strict=True)]
    assert final_x("ill_conditioned", [-5.0, -2.0], 20, name="nesterov", lr=eta, momentum=beta) == pytest.approx(x)


@pytest.mark.parametrize(
    ("schedule", "factor"),
    [
        ("constant", lambda t: 1.0),
        ("exponential", lambda t: math.exp(-0.1 * t)),
        ("polynomial", lambda t: (1 + 0.1 * t) ** (-0.5)),
    ],
)
def test_sgd_schedules_follow_the_book(schedule, factor):
    steps, eta, seed = 50, 0.1, 7
    noise = torch.randn((steps, 2), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).tolist()
    x, t = [-5.0, -2.0], 1
    for k in range(steps):
        t += 1  # the book's lr() increments its global t before using it
        g = [2 * x[0] + noise[k][0], 4 * x[1] + noise[k][1]]
        x = [xi - eta * factor(t) * gi for xi, gi in zip(x, g, strict=True)]
    got = final_x("bowl", [-5.0, -2.0], steps, name="sgd", lr=eta, schedule=schedule, seed=seed)
    assert got == pytest.approx(x, abs=TOL)


def test_sgd_noise_depends_on_seed_and_is_reproducible():
    a = final_x("bowl", [-5.0, -2.0], 10, name="sgd", seed=1)
    assert a == final_x("bowl", [-5.0, -2.0], 10, name="sgd", seed=1)
    assert a != final_x("bowl", [-5.0, -2.0], 10, name="sgd", seed=2)
    assert final_x("bowl", [-5.0, -2.0], 10, name="sgd", noise_std=0) == final_x("bowl", [-5.0, -2.0], 10, name="gd")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({"name": "gd", "lr": 0.1}, {"name": "torch:sgd", "lr": 0.1}),
        ({"name": "momentum", "lr": 0.1, "momentum": 0.5}, {"name": "torch:sgd", "lr": 0.1, "momentum": 0.5}),
        (
            {"name": "nesterov", "lr": 0.1, "momentum": 0.5},
            {"name": "torch:sgd", "lr": 0.1, "momentum": 0.5, "nesterov": True},
        ),
        ({"name": "adagrad", "lr": 0.4, "eps": 0.0}, {"name": "torch:adagrad", "lr": 0.4, "eps": 0.0}),
        (
            {"name": "rmsprop", "lr": 0.4, "gamma": 0.9, "eps": 0.0},
            {"name": "torch:rmsprop", "lr": 0.4, "gamma": 0.9, "eps": 0.0},
        ),
        (
            {"name": "adadelta", "rho": 0.9, "eps": 1e-5},
            {"name": "torch:adadelta", "lr": 1.0, "rho": 0.9, "eps": 1e-5},
        ),
        (
            {"name": "adam", "lr": 0.3, "eps": 1e-6, "eps_in_sqrt": False},
            {"name": "torch:adam", "lr": 0.3, "eps": 1e-6},
        ),
    ],
)
def test_torch_optimizer_agrees_where_formulas_coincide(ours, theirs):
    # ε inside vs outside the square root differs, so those comparisons use ε = 0 (or the same placement).
    mine = final_x("ill_conditioned", [-5.0, -2.0], 20, **ours)
    torchs = final_x("ill_conditioned", [-5.0, -2.0], 20, **theirs)
    assert mine == pytest.approx(torchs, abs=1e-9)


def test_compiled_and_autograd_backends_agree_on_a_long_run():
    a = final_x("rosenbrock", [-1.5, 2.0], 500, "compiled", name="adam", lr=0.01)
    b = final_x("rosenbrock", [-1.5, 2.0], 500, "autograd", name="adam", lr=0.01)
    assert a == pytest.approx(b, abs=1e-9)


def test_points_carry_step_f_grad_and_norm():
    run = run_trajectory(resolve_objective("bowl"), OptimizerConfig(name="gd"), [-5.0, -2.0], 3)
    first = run["points"][0]
    assert first == {"step": 0, "x": [-5.0, -2.0], "f": 33.0, "grad": [-10.0, -8.0], "grad_norm": math.hypot(10, 8)}
    assert [p["step"] for p in run["points"]] == [0, 1, 2, 3]
    assert run["diverged"] is None


def test_divergence_is_reported_with_its_step():
    run = run_trajectory(resolve_objective("x**2", 1), OptimizerConfig(name="gd", lr=1.1), [10.0], 1000)
    assert run["diverged"] is not None
    step = run["diverged"]["step"]
    assert len(run["points"]) == step + 1 < 1001
    assert abs(run["points"][-2]["x"][0]) <= 1e10 < abs(run["points"][-1]["x"][0])


def test_non_finite_values_end_the_run_as_nulls():
    run = run_trajectory(resolve_objective("log(x)", 1), OptimizerConfig(name="gd", lr=10.0), [1.0], 5)
    assert run["diverged"]["reason"] == "a value became non-finite"
    assert run["points"][-1]["f"] is None


def test_newton_reports_negative_curvature_and_keeps_going():
    run = run_trajectory(resolve_objective("saddle"), OptimizerConfig(name="newton"), [1.0, 0.5], 3)
    assert run["event_counts"] == {"negative_curvature": 3}
    assert run["points"][-1]["x"] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("function", "x0"), [("x**3", [0.0]), ("x1**2 + 0*x2", [1.0, 1.0]), ("x1**4 + x2**2", [0.0, 1.0])]
)
def test_newton_stops_on_a_singular_hessian(function, x0):
    run = run_trajectory(resolve_objective(function, len(x0)), OptimizerConfig(name="newton"), x0, 10)
    assert run["stopped"]["step"] == 0
    assert run["event_counts"]["singular_hessian"] == 1
    assert len(run["points"]) == 1


def test_newton_in_n_dimensions_solves_a_quadratic_in_one_step():
    objective = resolve_objective("x1**2 + x1*x2 + 3*x2**2 - x1", 2)
    run = run_trajectory(objective, OptimizerConfig(name="newton"), [4.0, -3.0], 1)
    # ∇f = (2x1 + x2 - 1, x1 + 6x2) = 0  ->  x = (6/11, -1/11)
    assert run["points"][-1]["x"] == pytest.approx([6 / 11, -1 / 11], abs=1e-12)


def test_newton_stops_on_an_asymmetric_singular_autograd_hessian():
    # At (1, 0) autograd gives x1**x2 the Hessian [[0, 0], [1, 0]]: eigvalsh (lower triangle) sees ±1, solve fails.
    run = run_trajectory(resolve_objective("x1**x2", 2), OptimizerConfig(name="newton"), [1.0, 1.0], 5, "autograd")
    assert run["stopped"] == {"step": 1, "reason": "the Hessian is singular"}
    assert run["event_counts"]["singular_hessian"] == 1
    assert len(run["points"]) == 2
