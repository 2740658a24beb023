"""The optimization lab's entry points: one per endpoint, each taking its request model and the lab's limits.

Limits are checked first, defaults come from the presets, then the computation runs. None of this knows HTTP.
"""

from collections.abc import Sequence
from pathlib import Path

import torch

from service.config import LabSettings
from service.errors import InvalidInput
from service.optlab import convexity, plots
from service.optlab.constrained import minimize_constrained
from service.optlab.expressions import Limits
from service.optlab.functions import PRESETS, Objective, check_point, resolve_objective
from service.optlab.linreg import load_dataset, optimum_loss, train_linreg
from service.optlab.optimizers import known_names
from service.optlab.requests import (
    ConstrainedRequest,
    ConvexityRequest,
    GridRequest,
    LinregRequest,
    PlotRequest,
    StationaryPointRequest,
    TrajectoryRequest,
)
from service.optlab.results import (
    Comparison,
    Constrained,
    Convexity,
    FunctionCatalogue,
    Grid1D,
    Grid2D,
    Linreg,
    Preset,
    SingleTrajectory,
    StationaryPoint,
    TrajectoryRun,
    TrajectoryStart,
)
from service.optlab.trajectories import run_trajectory


def _expression_limits(limits: LabSettings) -> Limits:
    """The bounds the expression parser enforces."""
    return Limits(
        max_length=limits.max_expression_length,
        max_depth=limits.max_depth,
        max_exponent=limits.max_exponent,
        max_dimension=limits.max_dimension,
    )


def _check_steps(steps: int, limits: LabSettings) -> None:
    if steps > limits.max_steps:
        raise InvalidInput(f"steps {steps} exceeds the limit of {limits.max_steps}")


def _check_optimizers(count: int, limits: LabSettings) -> None:
    if count > limits.max_optimizers:
        raise InvalidInput(f"{count} optimizers exceed the limit of {limits.max_optimizers} per call")


def catalogue() -> FunctionCatalogue:
    """The named functions with their expression, default start and box, and the optimizer names."""
    functions = [
        Preset(name=p.name, expression=p.expression, x0=list(p.x0), box=[list(b) for b in p.box], note=p.note)
        for p in PRESETS.values()
    ]
    return {"functions": functions, "optimizers": known_names()}


def _objective_and_start(
    function: str, x0: Sequence[float] | None, limits: LabSettings
) -> tuple[Objective, list[float]]:
    """The objective and the start point (the preset's when x0 is left out)."""
    if x0 is None:
        if function not in PRESETS:
            raise InvalidInput("x0 is required unless `function` names a preset")
        x0 = PRESETS[function].x0
    start = check_point(x0, "x0")
    return resolve_objective(function, len(start), _expression_limits(limits)), start


def _runs(
    request: TrajectoryRequest, limits: LabSettings, *, plot: bool = False
) -> tuple[Objective, list[float], list[TrajectoryRun]]:
    """Check the limits, then run every optimizer of the request from the same start."""
    configs = request.configs()
    _check_steps(request.steps, limits)
    _check_optimizers(len(configs), limits)
    objective, start = _objective_and_start(request.function, request.x0, limits)
    if plot and objective.dimension > 2:  # refused before any trajectory runs
        raise InvalidInput("plots need a function of one or two coordinates")
    runs = [run_trajectory(objective, config, start, request.steps, request.backend) for config in configs]
    return objective, start, runs


def trajectories(request: TrajectoryRequest, *, limits: LabSettings) -> Comparison | SingleTrajectory:
    """Every optimizer's run from one start; a request for one `optimizer` gets that run's keys alongside."""
    objective, start, runs = _runs(request, limits)
    header: TrajectoryStart = {
        "function": objective.expression.source,
        "dimension": objective.dimension,
        "x0": start,
        "steps": request.steps,
        "backend": request.backend,
    }
    if request.optimizer is not None:
        return {**header, **runs[0]}
    return {**header, "runs": runs}


def _plot_box(
    function: str, objective: Objective, box: Sequence[Sequence[float]] | None, runs: list[TrajectoryRun]
) -> torch.Tensor:
    """The box to draw: the client's, the preset's, or the span of the points with a margin."""
    if box is not None:
        return convexity.check_box(box, objective.dimension)
    if function in PRESETS:
        return convexity.check_box(PRESETS[function].box, objective.dimension)
    coords = [p["x"] for run in runs for p in run["points"] if None not in p["x"]]
    spans = []
    for i in range(objective.dimension):
        values = [v for c in coords if (v := c[i]) is not None] or [0.0]
        low, high = min(values), max(values)
        margin = max(0.1 * (high - low), 1.0)
        spans.append([max(low - margin, -convexity.BOX_LIMIT), min(high + margin, convexity.BOX_LIMIT)])
    return convexity.check_box(spans, objective.dimension)


def trajectory_plot(request: PlotRequest, *, image_format: plots.ImageFormat, limits: LabSettings) -> bytes:
    """The contour (or curve) picture with every run drawn."""
    objective, _, runs = _runs(request, limits, plot=True)
    box = _plot_box(request.function, objective, request.box, runs)
    return plots.render_trajectories(objective, box, runs, image_format)


def grid(request: GridRequest, *, limits: LabSettings) -> Grid1D | Grid2D:
    """f over a grid of the box (default: the preset's box)."""
    if request.resolution > limits.max_grid:
        raise InvalidInput(f"resolution {request.resolution} exceeds the limit of {limits.max_grid} points per axis")
    box = request.box
    if box is None:
        if request.function not in PRESETS:
            raise InvalidInput("box is required unless `function` names a preset")
        box = [list(b) for b in PRESETS[request.function].box]
    objective = resolve_objective(request.function, len(box), _expression_limits(limits))
    return plots.contour_grid(objective, convexity.check_box(box, objective.dimension), request.resolution)


def convexity_check(request: ConvexityRequest, *, limits: LabSettings) -> Convexity:
    """The convexity verdict with its evidence."""
    objective = resolve_objective(request.function, len(request.box), _expression_limits(limits))
    box = convexity.check_box(request.box, objective.dimension)
    verdict = convexity.check_convexity(objective, box, request.samples, request.seed)
    source_box = [list(map(float, b)) for b in request.box]
    return {"function": objective.expression.source, "box": source_box, **verdict}


def warm_up() -> None:
    """Run a tiny convexity check, so that torch's lazy first uses (torch.func's Hessians take seconds to load)
    happen at start-up and not inside a caller's time budget."""
    convexity_check(
        ConvexityRequest(function="x1**2 + x2**2", box=[[-1.0, 1.0], [-1.0, 1.0]], samples=4), limits=LabSettings()
    )


def stationary_point(request: StationaryPointRequest, *, limits: LabSettings) -> StationaryPoint:
    """Gradient norm, Hessian eigenvalues and the classification at x."""
    point = check_point(request.x, "x")
    objective = resolve_objective(request.function, len(point), _expression_limits(limits))
    analysis = convexity.classify_stationary_point(objective, point, request.tol)
    return {"function": objective.expression.source, **analysis}


def constrained(request: ConstrainedRequest, *, limits: LabSettings) -> Constrained:
    """The constrained minimization's trajectory."""
    _check_steps(request.steps, limits)
    objective, start = _objective_and_start(request.function, request.x0, limits)
    run = minimize_constrained(
        objective,
        request.constraint,
        start,
        method=request.method,
        lr=request.lr,
        steps=request.steps,
        penalty=request.penalty,
    )
    constraint = request.constraint.model_dump(exclude_none=True)
    return {"function": objective.expression.source, "constraint": constraint, **run}


def linreg(request: LinregRequest, *, data_dir: Path, limits: LabSettings) -> Linreg:
    """Train each optimizer on the same data; curves, final losses and the least-squares optimum."""
    configs = request.configs()
    _check_optimizers(len(configs), limits)
    if request.epochs > limits.max_linreg_epochs:
        raise InvalidInput(f"epochs {request.epochs} exceeds the limit of {limits.max_linreg_epochs}")
    features, labels = load_dataset(request.dataset, data_dir)
    runs = [
        train_linreg(features, labels, c, batch_size=request.batch_size, epochs=request.epochs, seed=request.seed)
        for c in configs
    ]
    return {
        "dataset": request.dataset,
        "examples": len(features),
        "batch_size": request.batch_size,
        "epochs": request.epochs,
        "optimum_loss": optimum_loss(features, labels),
        "runs": runs,
    }
