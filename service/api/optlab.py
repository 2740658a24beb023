"""Optimization-lab endpoints: trajectories, contour grids and plots, convexity, stationary points,
constrained minimization and the linear-regression optimizer comparison.

Handlers are plain `def` (torch work runs in Starlette's thread pool) and return JSONResponse directly:
the results are already JSON-ready, and skipping `jsonable_encoder` matters for 10,000-step trajectories.
"""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from service.api.optlab_schemas import (
    ConstrainedRequest,
    ConvexityRequest,
    GridRequest,
    ImageFormatQuery,
    LinregRequest,
    PlotRequest,
    StationaryPointRequest,
    TrajectoryRequest,
)
from service.deps import SettingsDep
from service.optlab import lab, plots
from service.optlab.optimizers import known_names

router = APIRouter(tags=["optimization lab"])


def _limits(settings: SettingsDep) -> lab.LabLimits:
    return lab.LabLimits.from_settings(settings)


@router.get("/functions")
def list_functions() -> JSONResponse:
    """List the preset functions of the optimization chapter and the optimizer names."""
    return JSONResponse({"functions": lab.list_presets(), "optimizers": known_names()})


@router.post("/trajectories")
def post_trajectories(body: TrajectoryRequest, settings: SettingsDep) -> JSONResponse:
    """Run one optimizer (`optimizer`) or compare several (`optimizers`) from x0 on a function."""
    result = lab.trajectories(body.function, body.x0, body.steps, body.configs(), body.backend, _limits(settings))
    if body.optimizer is not None:
        run = result.pop("runs")[0]
        result.update(run)
    return JSONResponse(result)


@router.post("/trajectories/plot")
def post_trajectory_plot(body: PlotRequest, settings: SettingsDep, format: ImageFormatQuery = "png") -> Response:
    """Draw the function's contours (or curve, in 1-D) with each optimizer's trajectory, as PNG or SVG."""
    image = lab.trajectory_plot(body.function, body.x0, body.steps, body.configs(), body.box, format, _limits(settings))
    return Response(image, media_type=plots.MEDIA_TYPES[format])


@router.post("/trajectories/grid")
def post_grid(body: GridRequest, settings: SettingsDep) -> JSONResponse:
    """Evaluate the function on a grid over a 1-D or 2-D box, for drawing contours client-side."""
    return JSONResponse(lab.grid(body.function, body.box, body.resolution, _limits(settings)))


@router.post("/analysis/convexity")
def post_convexity(body: ConvexityRequest, settings: SettingsDep) -> JSONResponse:
    """Decide convexity on a box, with the smallest Hessian eigenvalue found and a Jensen counterexample."""
    return JSONResponse(lab.convexity_check(body.function, body.box, body.samples, body.seed, _limits(settings)))


@router.post("/analysis/stationary-point")
def post_stationary_point(body: StationaryPointRequest, settings: SettingsDep) -> JSONResponse:
    """Classify a point as minimum, maximum, saddle, degenerate or not stationary."""
    return JSONResponse(lab.stationary_point(body.function, body.x, body.tol, _limits(settings)))


@router.post("/analysis/constrained")
def post_constrained(body: ConstrainedRequest, settings: SettingsDep) -> JSONResponse:
    """Minimize over a ball or half-space (projected GD, penalty or Lagrangian) and return the trajectory."""
    result = lab.constrained(
        body.function,
        body.x0,
        body.constraint,
        body.method,
        body.lr,
        body.steps,
        body.penalty,
        _limits(settings),
    )
    return JSONResponse(result)


def _linreg(body: LinregRequest, settings: SettingsDep) -> dict[str, Any]:
    return lab.linreg(
        body.dataset,
        body.configs(),
        body.batch_size,
        body.epochs,
        body.seed,
        settings.data_dir,
        _limits(settings),
    )


@router.post("/optimizers/linreg")
def post_linreg(body: LinregRequest, settings: SettingsDep) -> JSONResponse:
    """Train linear regression (the book's airfoil set-up) with one or several optimizers."""
    return JSONResponse(_linreg(body, settings))


@router.post("/optimizers/linreg/plot")
def post_linreg_plot(body: LinregRequest, settings: SettingsDep, format: ImageFormatQuery = "png") -> Response:
    """The loss curves of a linear-regression comparison, as PNG or SVG."""
    image = plots.render_loss_curves(_linreg(body, settings)["runs"], format)
    return Response(image, media_type=plots.MEDIA_TYPES[format])
