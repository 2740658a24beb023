"""Optimization-lab endpoints: trajectories, contour grids and plots, convexity, stationary points,
constrained minimization and the linear-regression optimizer comparison.

Handlers are plain `def` (torch work runs in Starlette's thread pool). Each declares the lab's typed result as
its response model, for the document, and returns a `FastJSONResponse` directly: the results are already
JSON-ready, and pydantic-core's Rust encoder writes a 10,000-step trajectory about five times faster than
`json.dumps` (and far faster than validating it against the model again).
"""

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic_core import to_json

from service.api.plumbing.deps import SettingsDep
from service.api.plumbing.security import LAB, LabGateDep, auth_responses
from service.optlab import lab, plots
from service.optlab import requests as rq
from service.optlab import results as rs


class FastJSONResponse(JSONResponse):
    """JSON rendered by pydantic-core; a stray inf or nan becomes null instead of invalid JSON."""

    def render(self, content: Any) -> bytes:
        return to_json(content, inf_nan_mode="null")


IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "The picture."}
}
router = APIRouter(
    tags=["optimization lab"],
    default_response_class=FastJSONResponse,
    dependencies=[Depends(LAB)],
    responses=auth_responses(limited=True),
)


@router.get("/functions", response_model=rs.FunctionCatalogue)
def list_functions() -> FastJSONResponse:
    """List the preset functions of the optimization chapter and the optimizer names."""
    return FastJSONResponse(lab.catalogue())


@router.post("/trajectories", response_model=rs.Comparison | rs.SingleTrajectory)
def post_trajectories(body: rq.TrajectoryRequest, settings: SettingsDep, gate: LabGateDep) -> FastJSONResponse:
    """Run one optimizer (`optimizer`) or compare several (`optimizers`) from x0 on a function."""
    return FastJSONResponse(gate.run(lab.trajectories, body, limits=settings.lab))


@router.post("/trajectories/plot", response_class=Response, responses=IMAGE_RESPONSES)
def post_trajectory_plot(
    body: rq.PlotRequest, settings: SettingsDep, gate: LabGateDep, format: plots.ImageFormat = "png"
) -> Response:
    """Draw the function's contours (or curve, in 1-D) with each optimizer's trajectory, as PNG or SVG."""
    image = gate.run(lab.trajectory_plot, body, image_format=format, limits=settings.lab)
    return Response(image, media_type=plots.MEDIA_TYPES[format])


@router.post("/trajectories/grid", response_model=rs.Grid1D | rs.Grid2D)
def post_grid(body: rq.GridRequest, settings: SettingsDep, gate: LabGateDep) -> FastJSONResponse:
    """Evaluate the function on a grid over a 1-D or 2-D box, for drawing contours client-side."""
    return FastJSONResponse(gate.run(lab.grid, body, limits=settings.lab))


@router.post("/analysis/convexity", response_model=rs.Convexity)
def post_convexity(body: rq.ConvexityRequest, settings: SettingsDep, gate: LabGateDep) -> FastJSONResponse:
    """Decide convexity on a box, with the smallest Hessian eigenvalue found and a Jensen counterexample."""
    return FastJSONResponse(gate.run(lab.convexity_check, body, limits=settings.lab))


@router.post("/analysis/stationary-point", response_model=rs.StationaryPoint)
def post_stationary_point(body: rq.StationaryPointRequest, settings: SettingsDep, gate: LabGateDep) -> FastJSONResponse:
    """Classify a point as minimum, maximum, saddle, degenerate or not stationary."""
    return FastJSONResponse(gate.run(lab.stationary_point, body, limits=settings.lab))


@router.post("/analysis/constrained", response_model=rs.Constrained)
def post_constrained(body: rq.ConstrainedRequest, settings: SettingsDep, gate: LabGateDep) -> FastJSONResponse:
    """Minimize over a ball or half-space (projected GD, penalty or Lagrangian) and return the trajectory."""
    return FastJSONResponse(gate.run(lab.constrained, body, limits=settings.lab))


@router.post("/optimizers/linreg", response_model=rs.Linreg)
def post_linreg(body: rq.LinregRequest, settings: SettingsDep, gate: LabGateDep) -> FastJSONResponse:
    """Train linear regression (the book's airfoil set-up) with one or several optimizers."""
    return FastJSONResponse(gate.run(lab.linreg, body, data_dir=settings.data_dir, limits=settings.lab))


@router.post("/optimizers/linreg/plot", response_class=Response, responses=IMAGE_RESPONSES)
def post_linreg_plot(
    body: rq.LinregRequest, settings: SettingsDep, gate: LabGateDep, format: plots.ImageFormat = "png"
) -> Response:
    """The loss curves of a linear-regression comparison, as PNG or SVG."""
    result = gate.run(lab.linreg, body, data_dir=settings.data_dir, limits=settings.lab)
    return Response(plots.render_loss_curves(result["runs"], format), media_type=plots.MEDIA_TYPES[format])
