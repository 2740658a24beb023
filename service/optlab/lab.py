"""The optimization lab's entry points: limits from settings, defaults from presets, then the computation.

Each function here is what one endpoint calls; none of them knows about HTTP.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from service.config import Settings
from service.errors import InvalidInput
from service.optlab import convexity, plots
from service.optlab.constrained import Constraint, Method, minimize_constrained
from service.optlab.expressions import Limits
from service.optlab.functions import PRESETS, Backend, Objective, check_point, resolve_objective
from service.optlab.linreg import Dataset, load_dataset, optimum_loss, train_linreg
from service.optlab.optimizers import OptimizerConfig
from service.optlab.trajectories import run_trajectory


@dataclass(frozen=True)
class LabLimits:
    """Every bound on a client's request, from Settings."""

    expression: Limits
    max_steps: int
    max_optimizers: int
    max_grid: int
    max_linreg_epochs: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "LabLimits":
        """Read the optlab_* fields."""
        return cls(
            expression=Limits(
                max_length=settings.optlab_max_expression_length,
                max_depth=settings.optlab_max_depth,
                max_exponent=settings.optlab_max_exponent,
                max_dimension=settings.optlab_max_dimension,
            ),
            max_steps=settings.optlab_max_steps,
            max_optimizers=settings.optlab_max_optimizers,
            max_grid=settings.optlab_max_grid,
            max_linreg_epochs=settings.optlab_max_linreg_epochs,
        )

    def check_steps(self, steps: int) -> None:
        """Raise InvalidInput past max_steps."""
        if steps > self.max_steps:
            raise InvalidInput(f"steps {steps} exceeds the limit of {self.max_steps}")

    def check_optimizers(self, count: int) -> None:
        """Raise InvalidInput past max_optimizers."""
        if count > self.max_optimizers:
            raise InvalidInput(f"{count} optimizers exceed the limit of {self.max_optimizers} per call")


def list_presets() -> list[dict[str, Any]]:
    """The named functions with their expression, default start and box."""
    return [
        {"name": p.name, "expression": p.expression, "x0": list(p.x0), "box": [list(b) for b in p.box], "note": p.note}
        for p in PRESETS.values()
    ]


def objective_and_start(function: str, x0: Sequence[float] | None, limits: LabLimits) -> tuple[Objective, list[float]]:
    """The objective and the start point (the preset's when x0 is left out)."""
    if x0 is None:
        if function not in PRESETS:
            raise InvalidInput("x0 is required unless `function` names a preset")
        x0 = PRESETS[function].x0
    start = check_point(x0, "x0")
    return resolve_objective(function, len(start), limits.expression), start


def trajectories(
    function: str,
    x0: Sequence[float] | None,
    steps: int,
    configs: list[OptimizerConfig],
    backend: Backend,
    limits: LabLimits,
) -> dict[str, Any]:
    """Run every config from the same start; {function, dimension, x0, steps, runs}."""
    limits.check_steps(steps)
    limits.check_optimizers(len(configs))
    objective, start = objective_and_start(function, x0, limits)
    runs = [run_trajectory(objective, config, start, steps, backend) for config in configs]
    return {
        "function": objective.expression.source,
        "dimension": objective.dimension,
        "x0": start,
        "steps": steps,
        "backend": backend,
        "runs": runs,
    }


def plot_box(
    function: str, objective: Objective, box: Sequence[Sequence[float]] | None, runs: list[dict[str, Any]]
) -> torch.Tensor:
    """The box to draw: the client's, the preset's, or the span of the points with a margin."""
    if box is not None:
        return convexity.check_box(box, objective.dimension)
    if function in PRESETS:
        return convexity.check_box(PRESETS[function].box, objective.dimension)
    coords = [p["x"] for run in runs for p in run["points"] if None not in p["x"]]
    spans = []
    for i in range(objective.dimension):
        values = [c[i] for c in coords] or [0.0]
        low, high = min(values), max(values)
        margin = max(0.1 * (high - low), 1.0)
        spans.append([max(low - margin, -convexity.BOX_LIMIT), min(high + margin, convexity.BOX_LIMIT)])
    return convexity.check_box(spans, objective.dimension)


def trajectory_plot(
    function: str,
    x0: Sequence[float] | None,
    steps: int,
    configs: list[OptimizerConfig],
    box: Sequence[Sequence[float]] | None,
    image_format: plots.ImageFormat,
    backend: Backend,
    limits: LabLimits,
) -> bytes:
    """The contour (or curve) picture with every run drawn."""
    limits.check_steps(steps)
    limits.check_optimizers(len(configs))
    objective, start = objective_and_start(function, x0, limits)
    if objective.dimension > 2:  # refused before any trajectory runs
        raise InvalidInput("plots need a function of one or two coordinates")
    runs = [run_trajectory(objective, config, start, steps, backend) for config in configs]
    return plots.render_trajectories(objective, plot_box(function, objective, box, runs), runs, image_format)


def grid(function: str, box: Sequence[Sequence[float]] | None, resolution: int, limits: LabLimits) -> dict[str, Any]:
    """f over a grid of the box (default: the preset's box)."""
    if resolution > limits.max_grid:
        raise InvalidInput(f"resolution {resolution} exceeds the limit of {limits.max_grid} points per axis")
    if box is None:
        if function not in PRESETS:
            raise InvalidInput("box is required unless `function` names a preset")
        box = PRESETS[function].box
    objective = resolve_objective(function, len(box), limits.expression)
    return plots.contour_grid(objective, convexity.check_box(box, objective.dimension), resolution)


def convexity_check(
    function: str, box: Sequence[Sequence[float]], samples: int, seed: int, limits: LabLimits
) -> dict[str, Any]:
    """The convexity verdict with its evidence."""
    objective = resolve_objective(function, len(box), limits.expression)
    result = convexity.check_convexity(objective, convexity.check_box(box, objective.dimension), samples, seed)
    return {"function": objective.expression.source, "box": [list(map(float, b)) for b in box], **result}


def stationary_point(function: str, x: Sequence[float], tol: float, limits: LabLimits) -> dict[str, Any]:
    """Gradient norm, Hessian eigenvalues and the classification at x."""
    point = check_point(x, "x")
    objective = resolve_objective(function, len(point), limits.expression)
    return {"function": objective.expression.source, **convexity.classify_stationary_point(objective, point, tol)}


def constrained(
    function: str,
    x0: Sequence[float],
    constraint: Constraint,
    method: Method,
    lr: float,
    steps: int,
    penalty: float,
    limits: LabLimits,
) -> dict[str, Any]:
    """The constrained minimization's trajectory."""
    limits.check_steps(steps)
    objective, start = objective_and_start(function, x0, limits)
    result = minimize_constrained(objective, constraint, start, method=method, lr=lr, steps=steps, penalty=penalty)
    return {"function": objective.expression.source, "constraint": constraint.model_dump(exclude_none=True), **result}


def linreg(
    dataset: Dataset,
    configs: list[OptimizerConfig],
    batch_size: int,
    epochs: int,
    seed: int,
    data_dir: Path,
    limits: LabLimits,
) -> dict[str, Any]:
    """Train each optimizer on the same data; curves, final losses and the least-squares optimum."""
    limits.check_optimizers(len(configs))
    if epochs > limits.max_linreg_epochs:
        raise InvalidInput(f"epochs {epochs} exceeds the limit of {limits.max_linreg_epochs}")
    features, labels = load_dataset(dataset, data_dir)
    runs = [train_linreg(features, labels, c, batch_size=batch_size, epochs=epochs, seed=seed) for c in configs]
    return {
        "dataset": dataset,
        "examples": len(features),
        "batch_size": batch_size,
        "epochs": epochs,
        "optimum_loss": optimum_loss(features, labels),
        "runs": runs,
    }
