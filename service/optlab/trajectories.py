"""Optimizer trajectories: iterate an optimizer on an objective and record every point.

A run returns JSON-ready dicts (non-finite numbers become null): `points` holds steps + 1 entries
(step, x, f, grad, grad_norm) unless the run diverged (a non-finite value, or a coordinate beyond
DIVERGENCE_BOUND) or stopped (a singular Hessian), in which case it ends at that step and says so.
"""

import math
from collections.abc import Sequence

import torch

from service.errors import InvalidInput
from service.optlab.budget import check_budget
from service.optlab.functions import Objective
from service.optlab.numbers import DIVERGENCE_BOUND, finite_list, finite_or_none
from service.optlab.optimizers import (
    CURVATURE_OPTIMIZERS,
    RULES,
    Hyper,
    build_torch_optimizer,
    learning_rate,
    resolve,
    state_names,
)
from service.optlab.requests import Backend, OptimizerConfig
from service.optlab.results import RunEvent, StepNote, TrajectoryPoint, TrajectoryRun

MAX_EVENTS = 50


class Stepper:
    """Moves a point one step; records notable events (negative curvature, singular Hessian)."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.event_counts: dict[str, int] = {}
        self.stopped: StepNote | None = None

    def step(self, x: list[float], g: list[float], t: int) -> list[float]:
        raise NotImplementedError

    def state(self) -> dict[str, list[float | None]]:
        return {}

    def note(self, step: int, kind: str, detail: str) -> None:
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        if len(self.events) < MAX_EVENTS:
            self.events.append({"step": step, "kind": kind, "detail": detail})


class RuleStepper(Stepper):
    """Our coordinate-wise rules (gd, sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam)."""

    def __init__(self, hyper: Hyper, dimension: int, steps: int, seed: int) -> None:
        super().__init__()
        self.hyper, self.rule = hyper, RULES[hyper.name]
        self.states = [dict.fromkeys(state_names(hyper.name), 0.0) for _ in range(dimension)]
        self.noise: list[list[float]] = []
        if hyper.name == "sgd" and hyper.noise_std > 0 and steps > 0:
            generator = torch.Generator().manual_seed(seed)
            draws = torch.randn((steps, dimension), generator=generator, dtype=torch.float64)
            self.noise = (draws * hyper.noise_std).tolist()

    def step(self, x: list[float], g: list[float], t: int) -> list[float]:
        h = self.hyper
        if self.noise:
            g = [gi + ni for gi, ni in zip(g, self.noise[t - 1], strict=True)]
        lr = learning_rate(h, t)
        return [self.rule(h, xi, gi, s, t, lr) for xi, gi, s in zip(x, g, self.states, strict=True)]

    def state(self) -> dict[str, list[float | None]]:
        names = state_names(self.hyper.name)
        return {name: finite_list([s[name] for s in self.states]) for name in names}


class CurvatureStepper(Stepper):
    """Newton's method (solve with the Hessian) and gradient descent preconditioned by diag(H)⁻¹."""

    def __init__(self, hyper: Hyper, objective: Objective, backend: Backend) -> None:
        super().__init__()
        self.hyper, self.objective, self.backend = hyper, objective, backend

    def step(self, x: list[float], g: list[float], t: int) -> list[float]:
        hess = self.objective.hessian(x, self.backend)
        if not all(math.isfinite(v) for row in hess for v in row):
            return [math.nan] * len(x)
        if self.hyper.name == "preconditioned_gd":
            return self._preconditioned(x, g, hess, t)
        if len(x) == 1:
            return self._newton_1d(x, g, hess[0][0], t)
        return self._newton(x, g, hess, t)

    def _newton_1d(self, x: list[float], g: list[float], curvature: float, t: int) -> list[float]:
        if curvature == 0.0:
            self._stop(t, f"f''(x) = 0 at x = {x[0]:g}: the Newton step is undefined")
            return x
        if curvature < 0:
            self.note(t, "negative_curvature", f"f''(x) = {curvature:.6g} < 0: the step heads for a maximum")
        return [x[0] - self.hyper.lr * g[0] / curvature]

    def _newton(self, x: list[float], g: list[float], hess: list[list[float]], t: int) -> list[float]:
        H = torch.tensor(hess, dtype=torch.float64)
        try:
            eigenvalues = torch.linalg.eigvalsh(H)
        except RuntimeError:  # LAPACK gives up on entries near the float64 range
            self._stop(t, "the Hessian could not be decomposed")
            return x
        scale = max(1.0, float(eigenvalues.abs().max()))
        if float(eigenvalues.abs().min()) <= 1e-12 * scale:
            self._stop(t, f"the Hessian is singular (eigenvalues {eigenvalues.tolist()})")
            return x
        if float(eigenvalues.min()) < 0:
            self.note(t, "negative_curvature", f"Hessian eigenvalues {eigenvalues.tolist()}: not positive")
        try:
            direction = torch.linalg.solve(H, torch.tensor(g, dtype=torch.float64))
        except RuntimeError:  # eigvalsh reads one triangle; autograd's Hessian can be asymmetric (x1**x2 at x2 = 0)
            self._stop(t, "the Hessian is singular")
            return x
        return [xi - self.hyper.lr * di for xi, di in zip(x, direction.tolist(), strict=True)]

    def _preconditioned(self, x: list[float], g: list[float], hess: list[list[float]], t: int) -> list[float]:
        diagonal = [hess[i][i] for i in range(len(x))]
        if any(d == 0.0 for d in diagonal):
            self._stop(t, f"diag(H) has a zero entry ({diagonal}): it cannot be inverted")
            return x
        if any(d < 0 for d in diagonal):
            self.note(t, "negative_curvature", f"diag(H) = {diagonal} has a negative entry")
        return [xi - self.hyper.lr * gi / d for xi, gi, d in zip(x, g, diagonal, strict=True)]

    def _stop(self, t: int, detail: str) -> None:
        self.note(t, "singular_hessian", detail)
        self.stopped = {"step": t - 1, "reason": detail}


class TorchStepper(Stepper):
    """Drives a real torch.optim optimizer on a float64 parameter, feeding it our gradients."""

    def __init__(self, config: OptimizerConfig, x0: list[float]) -> None:
        super().__init__()
        self.param = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        self.optimizer = build_torch_optimizer(config, [self.param])

    def step(self, x: list[float], g: list[float], t: int) -> list[float]:
        self.param.grad = torch.tensor(g, dtype=torch.float64)
        self.optimizer.step()
        values: list[float] = self.param.detach().tolist()
        return values


def make_stepper(
    config: OptimizerConfig, objective: Objective, x0: list[float], steps: int, backend: Backend
) -> Stepper:
    """The stepper for a config: torch:<name>, a curvature method, or one of our rules."""
    if config.name.startswith("torch:"):
        return TorchStepper(config, x0)
    hyper = resolve(config)
    if hyper.name in CURVATURE_OPTIMIZERS:
        return CurvatureStepper(hyper, objective, backend)
    return RuleStepper(hyper, objective.dimension, steps, config.seed)


def _divergence_reason(x: list[float], f: float, norm: float) -> str:
    if math.isfinite(f) and math.isfinite(norm) and all(map(math.isfinite, x)):
        return f"a coordinate left the bound ±{DIVERGENCE_BOUND:g}"
    return "a value became non-finite"


def run_trajectory(
    objective: Objective,
    config: OptimizerConfig,
    x0: Sequence[float],
    steps: int,
    backend: Backend = "compiled",
) -> TrajectoryRun:
    """Run `config` from `x0` for `steps` steps; JSON-ready points, divergence, events and final state."""
    x = list(x0)
    if len(x) != objective.dimension:
        raise InvalidInput(f"x0 has {len(x)} coordinates but the function has {objective.dimension}")
    stepper = make_stepper(config, objective, x, steps, backend)
    points: list[TrajectoryPoint] = []
    diverged: StepNote | None = None
    for k in range(steps + 1):
        check_budget()
        f, g = _evaluate(objective, x, backend)
        norm = math.hypot(*g)
        points.append({"step": k, "x": x, "f": f, "grad": g, "grad_norm": norm})
        # One cheap test per step; every point before a divergence is finite, so only the last needs cleaning.
        if not (math.isfinite(f) and math.isfinite(norm) and all(abs(v) <= DIVERGENCE_BOUND for v in x)):
            diverged = {"step": k, "reason": _divergence_reason(x, f, norm)}
            points[-1] = _clean(k, x, f, g, norm)
            break
        if k == steps:
            break
        x = _advance(stepper, x, g, k + 1)
        if stepper.stopped is not None:
            break
    return {
        "optimizer": config.display,
        "config": config.model_dump(exclude_none=True),
        "points": points,
        "diverged": diverged,
        "stopped": stepper.stopped,
        "events": stepper.events,
        "event_counts": stepper.event_counts,
        "state": stepper.state(),
    }


def _advance(stepper: Stepper, x: list[float], g: list[float], t: int) -> list[float]:
    """Step t of the optimizer; an arithmetic overflow makes the point non-finite (reported as diverged)."""
    try:
        return stepper.step(x, g, t)
    except (ZeroDivisionError, OverflowError):
        return [math.nan] * len(x)


def _evaluate(objective: Objective, x: list[float], backend: Backend) -> tuple[float, list[float]]:
    if not all(map(math.isfinite, x)):
        return math.nan, [math.nan] * len(x)
    try:
        return objective.value_and_grad(x, backend)
    except (ZeroDivisionError, OverflowError):
        return math.nan, [math.nan] * len(x)


def _clean(step: int, x: list[float], f: float, g: list[float], norm: float) -> TrajectoryPoint:
    return {
        "step": step,
        "x": finite_list(x),
        "f": finite_or_none(f),
        "grad": finite_list(g),
        "grad_norm": finite_or_none(norm),
    }
