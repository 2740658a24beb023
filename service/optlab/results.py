"""What the lab's entry points return: JSON-ready typed dicts, also the routes' response models.

TypedDicts cost nothing at run time (a 10,000-step trajectory stays plain lists and dicts for the fast JSON
encoder) while mypy checks every key and FastAPI documents the shape. Non-finite numbers are null.
"""

from collections.abc import Sequence
from typing import NotRequired

from typing_extensions import TypedDict

Number = float | None
Vector = Sequence[float | None]
OptimizerSettings = dict[str, float | str | bool]  # an OptimizerConfig as sent, fields left out omitted


class Preset(TypedDict):
    name: str
    expression: str
    x0: list[float]
    box: list[list[float]]
    note: str


class FunctionCatalogue(TypedDict):
    functions: list[Preset]
    optimizers: list[str]


class TrajectoryPoint(TypedDict):
    step: int
    x: Vector
    f: Number
    grad: Vector
    grad_norm: Number


class StepNote(TypedDict):
    """Where a run ended early (diverged or stopped) and why."""

    step: int
    reason: str


class RunEvent(TypedDict):
    step: int
    kind: str
    detail: str


class TrajectoryRun(TypedDict):
    optimizer: str
    config: OptimizerSettings
    points: list[TrajectoryPoint]
    diverged: StepNote | None
    stopped: StepNote | None
    events: list[RunEvent]
    event_counts: dict[str, int]
    state: dict[str, list[float | None]]


class TrajectoryStart(TypedDict):
    function: str
    dimension: int
    x0: list[float]
    steps: int
    backend: str


class Comparison(TrajectoryStart):
    """Several optimizers run from one start."""

    runs: list[TrajectoryRun]


class SingleTrajectory(TrajectoryStart, TrajectoryRun):
    """One optimizer's run, its keys beside the start's."""


class Grid1D(TypedDict):
    x: list[float]
    f: list[float | None]


class Grid2D(TypedDict):
    """Rows of `f` follow x2, columns x1."""

    x1: list[float]
    x2: list[float]
    f: list[list[float | None]]


class EigenValueAt(TypedDict):
    value: float
    at: list[float]


# Functional form: "lambda" is a Python keyword.
JensenCounterexample = TypedDict(
    "JensenCounterexample",
    {
        "x": list[float],
        "x_prime": list[float],
        "lambda": float,
        "point": list[float],
        "f_point": float,
        "chord": float,
        "gap": float,
        "holds": bool,
        "inequality": str,
    },
)


class ConvexityVerdict(TypedDict):
    convex: bool
    method: str
    min_hessian_eigenvalue: EigenValueAt | None
    undefined_points: int
    counterexample: JensenCounterexample | None


class Convexity(ConvexityVerdict):
    function: str
    box: list[list[float]]


class StationaryPointAnalysis(TypedDict):
    x: list[float]
    f: Number
    grad: list[float | None]
    grad_norm: float
    hessian: list[list[float]]
    hessian_eigenvalues: list[float]
    classification: str
    tolerance: float


class StationaryPoint(StationaryPointAnalysis):
    function: str


class ConstrainedPoint(TypedDict):
    step: int
    x: list[float | None]
    f: Number
    grad: list[float | None]
    constraint: Number
    feasible: bool
    alpha: NotRequired[float]


class ConstrainedFinal(TypedDict):
    x: list[float | None]
    f: Number
    constraint: Number
    feasible: bool


class ConstrainedRun(TypedDict):
    method: str
    points: list[ConstrainedPoint]
    diverged: StepNote | None
    final: ConstrainedFinal


class Constrained(ConstrainedRun):
    function: str
    constraint: dict[str, str | float | list[float]]


class CurvePoint(TypedDict):
    examples: int
    epoch: float
    loss: Number


class LinregRun(TypedDict):
    optimizer: str
    config: OptimizerSettings
    curve: list[CurvePoint]
    final_loss: Number
    diverged: bool
    seconds_per_epoch: float


class Linreg(TypedDict):
    dataset: str
    examples: int
    batch_size: int
    epochs: int
    optimum_loss: float
    runs: list[LinregRun]
