"""Contour grids and pictures: f on a grid, contours with trajectories drawn, linear-regression loss curves.

Matplotlib's object API (Figure, no pyplot) with the Agg backend, so rendering is thread-safe in handlers.
"""

import io
from typing import Any, Literal

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from service.errors import InvalidInput
from service.optlab.functions import Objective
from service.optlab.trajectories import finite_list

ImageFormat = Literal["png", "svg"]
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def contour_grid(objective: Objective, box: torch.Tensor, resolution: int) -> dict[str, Any]:
    """f on a resolution-per-axis grid over a 1-D or 2-D box (non-finite values are null)."""
    axes = [torch.linspace(float(lo), float(hi), resolution, dtype=torch.float64) for lo, hi in box]
    if objective.dimension == 1:
        values = objective.batch_values(axes[0][:, None])
        return {"x": axes[0].tolist(), "f": finite_list(values.tolist())}
    if objective.dimension != 2:
        raise InvalidInput("contour grids and plots need a function of one or two coordinates")
    grid_x1, grid_x2 = torch.meshgrid(axes[0], axes[1], indexing="xy")  # rows follow x2, columns x1
    values = objective.batch_values(torch.stack([grid_x1, grid_x2], dim=-1))
    return {"x1": axes[0].tolist(), "x2": axes[1].tolist(), "f": [finite_list(row) for row in values.tolist()]}


def render_trajectories(
    objective: Objective, box: torch.Tensor, runs: list[dict[str, Any]], image_format: ImageFormat
) -> bytes:
    """The function (curve or contours) with each run's points drawn over it."""
    grid = contour_grid(objective, box, 121)
    figure = Figure(figsize=(6, 4.5), dpi=100)
    ax = figure.subplots()
    if objective.dimension == 1:
        ax.plot(grid["x"], [float("nan") if v is None else v for v in grid["f"]], color="0.4")
        for run in runs:
            xs = [p["x"][0] for p in run["points"] if p["x"][0] is not None and p["f"] is not None]
            fs = [p["f"] for p in run["points"] if p["x"][0] is not None and p["f"] is not None]
            ax.plot(xs, fs, "-o", markersize=3, label=run["optimizer"])
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
    else:
        values = [[float("nan") if v is None else v for v in row] for row in grid["f"]]
        ax.contour(grid["x1"], grid["x2"], values, levels=20, cmap="viridis")
        for run in runs:
            kept = [p["x"] for p in run["points"] if None not in p["x"]]
            ax.plot([x[0] for x in kept], [x[1] for x in kept], "-o", markersize=3, label=run["optimizer"])
        ax.set_xlim(float(box[0, 0]), float(box[0, 1]))
        ax.set_ylim(float(box[1, 0]), float(box[1, 1]))
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    ax.set_title(objective.expression.source[:80])
    if runs:
        ax.legend(fontsize="small")
    return _encode(figure, image_format)


def render_loss_curves(runs: list[dict[str, Any]], image_format: ImageFormat) -> bytes:
    """Full-data loss against epochs, one line per optimizer, as the book draws it."""
    figure = Figure(figsize=(6, 4), dpi=100)
    ax = figure.subplots()
    for run in runs:
        kept = [p for p in run["curve"] if p["loss"] is not None]
        ax.plot([p["epoch"] for p in kept], [p["loss"] for p in kept], label=run["optimizer"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return _encode(figure, image_format)


def _encode(figure: Figure, image_format: ImageFormat) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format)
    return buffer.getvalue()
