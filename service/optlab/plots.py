"""Contour grids and pictures: f on a grid, contours with trajectories drawn, linear-regression loss curves.

Matplotlib's object API (Figure, no pyplot) with the Agg backend, so rendering is thread-safe in handlers.
"""

import io
import math
from collections.abc import Sequence
from typing import Literal

import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from service.errors import InvalidInput
from service.optlab.functions import Objective
from service.optlab.numbers import finite_list
from service.optlab.results import Grid1D, Grid2D, LinregRun, TrajectoryRun

ImageFormat = Literal["png", "svg"]
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
GRID_POINTS = 121  # per axis of a drawn curve or contour


def contour_grid(objective: Objective, box: torch.Tensor, resolution: int) -> Grid1D | Grid2D:
    """f on a resolution-per-axis grid over a 1-D or 2-D box (non-finite values are null)."""
    if objective.dimension == 1:
        return grid_1d(objective, box, resolution)
    if objective.dimension != 2:
        raise InvalidInput("contour grids and plots need a function of one or two coordinates")
    return grid_2d(objective, box, resolution)


def _axes(box: torch.Tensor, resolution: int) -> list[torch.Tensor]:
    return [torch.linspace(float(lo), float(hi), resolution, dtype=torch.float64) for lo, hi in box]


def grid_1d(objective: Objective, box: torch.Tensor, resolution: int) -> Grid1D:
    """f at `resolution` points over a 1-D box."""
    (axis,) = _axes(box, resolution)
    return {"x": axis.tolist(), "f": finite_list(objective.batch_values(axis[:, None]).tolist())}


def grid_2d(objective: Objective, box: torch.Tensor, resolution: int) -> Grid2D:
    """f on a resolution x resolution grid over a 2-D box."""
    axis1, axis2 = _axes(box, resolution)
    grid_x1, grid_x2 = torch.meshgrid(axis1, axis2, indexing="xy")  # rows follow x2, columns x1
    values = objective.batch_values(torch.stack([grid_x1, grid_x2], dim=-1))
    return {"x1": axis1.tolist(), "x2": axis2.tolist(), "f": [finite_list(row) for row in values.tolist()]}


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _draw_curve(ax: Axes, objective: Objective, box: torch.Tensor, runs: list[TrajectoryRun]) -> None:
    grid = grid_1d(objective, box, GRID_POINTS)
    ax.plot(grid["x"], _nan(grid["f"]), color="0.4")
    for run in runs:
        kept = [(x, f) for p in run["points"] if (x := p["x"][0]) is not None and (f := p["f"]) is not None]
        ax.plot([x for x, _ in kept], [f for _, f in kept], "-o", markersize=3, label=run["optimizer"])
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")


def _draw_contours(ax: Axes, objective: Objective, box: torch.Tensor, runs: list[TrajectoryRun]) -> None:
    grid = grid_2d(objective, box, GRID_POINTS)
    ax.contour(grid["x1"], grid["x2"], [_nan(row) for row in grid["f"]], levels=20, cmap="viridis")
    for run in runs:
        kept = [_nan(p["x"]) for p in run["points"] if None not in p["x"]]
        ax.plot([x[0] for x in kept], [x[1] for x in kept], "-o", markersize=3, label=run["optimizer"])
    ax.set_xlim(float(box[0, 0]), float(box[0, 1]))
    ax.set_ylim(float(box[1, 0]), float(box[1, 1]))
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")


def render_trajectories(
    objective: Objective, box: torch.Tensor, runs: list[TrajectoryRun], image_format: ImageFormat
) -> bytes:
    """The function (curve or contours) with each run's points drawn over it."""
    figure = Figure(figsize=(6, 4.5), dpi=100)
    ax = figure.subplots()
    draw = _draw_curve if objective.dimension == 1 else _draw_contours
    draw(ax, objective, box, runs)
    ax.set_title(objective.expression.source[:80])
    if runs:
        ax.legend(fontsize="small")
    return _encode(figure, image_format)


def render_loss_curves(runs: list[LinregRun], image_format: ImageFormat) -> bytes:
    """Full-data loss against epochs, one line per optimizer, as the book draws it."""
    figure = Figure(figsize=(6, 4), dpi=100)
    ax = figure.subplots()
    for run in runs:
        kept = [(p["epoch"], loss) for p in run["curve"] if (loss := p["loss"]) is not None]
        ax.plot([e for e, _ in kept], [loss for _, loss in kept], label=run["optimizer"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return _encode(figure, image_format)


def _encode(figure: Figure, image_format: ImageFormat) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format)
    return buffer.getvalue()
