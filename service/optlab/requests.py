"""What the lab is asked: one request model per entry point (also the HTTP bodies of its routes), and the
optimizer configs, backends and datasets they name. No torch here: the thin client shares these models."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from service.optlab.sets import Constraint, Method
from service.wire import exactly_one_schema, refuse_explicit_nulls

FUNCTION_FIELD = Field(
    ...,
    max_length=10_000,
    description="A preset name (GET /functions) or an expression in x or x1..xn, e.g. '0.1*x1**2 + 2*x2**2'.",
    examples=["0.1*x1**2 + 2*x2**2"],
)
Point = list[float]
Backend = Literal["compiled", "autograd"]
Dataset = Literal["airfoil", "synthetic"]


class OptimizerConfig(BaseModel):
    """One optimizer and its hyperparameters; fields left out take the book's defaults for that optimizer."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    name: str = Field(..., max_length=40, description="gd, sgd, momentum, nesterov, ..., or torch:<name>")
    label: str | None = Field(None, max_length=80, description="A display name for comparisons and plots.")
    lr: float | None = Field(None, gt=0, le=1e6, description="Learning rate η (Newton: the damping).")
    momentum: float | None = Field(None, ge=0, lt=1)
    nesterov: bool | None = Field(None, description="torch:sgd only; our `nesterov` optimizer implies it.")
    gamma: float | None = Field(None, ge=0, lt=1, description="RMSProp's decay (torch's alpha).")
    rho: float | None = Field(None, ge=0, lt=1, description="Adadelta's decay.")
    beta1: float | None = Field(None, ge=0, lt=1)
    beta2: float | None = Field(None, ge=0, lt=1)
    eps: float | None = Field(None, ge=0, le=1)
    eps_in_sqrt: bool | None = Field(
        None, description="adam: ε inside the square root (default, the book's formulas) or outside (torch.optim)."
    )
    noise_std: float | None = Field(None, ge=0, le=1e6, description="sgd: std of the gradient noise.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="sgd: seed of the gradient noise.")
    schedule: Literal["constant", "exponential", "polynomial"] = Field(
        "constant", description="η_t = η·s(t): 1, e^(−0.1t) or (1+0.1t)^(−0.5); step k uses t = k + 1."
    )

    @property
    def display(self) -> str:
        """The label, or the name."""
        return self.label or self.name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class _OneOrMany(_Strict):
    model_config = ConfigDict(json_schema_extra=exactly_one_schema("optimizer", "optimizers"))

    optimizer: OptimizerConfig | SkipJsonSchema[None] = None
    optimizers: list[OptimizerConfig] | SkipJsonSchema[None] = Field(None, min_length=1, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return refuse_explicit_nulls(data, "optimizer", "optimizers")

    @model_validator(mode="after")
    def _exactly_one(self) -> "_OneOrMany":
        if (self.optimizer is None) == (self.optimizers is None):
            raise ValueError("give either `optimizer` or `optimizers` (a list to compare), not both or neither")
        return self

    def configs(self) -> list[OptimizerConfig]:
        """The optimizers of the request, as a list."""
        return [self.optimizer] if self.optimizer is not None else list(self.optimizers or [])


class TrajectoryRequest(_OneOrMany):
    """One optimizer, or several to compare, from x0 on one function."""

    function: str = FUNCTION_FIELD
    x0: Point | None = Field(None, max_length=64, description="Start point; default: the preset's.")
    steps: int = Field(20, ge=0, le=10_000_000)
    backend: Backend = Field(
        "compiled", description="compiled: symbolic derivatives on floats (fast); autograd: torch.autograd."
    )


class PlotRequest(TrajectoryRequest):
    """A trajectory request plus the box to draw (default: the preset's, or around the points)."""

    box: list[Point] | None = Field(None, max_length=2)


class GridRequest(_Strict):
    """f on a grid over a 1-D or 2-D box."""

    function: str = FUNCTION_FIELD
    box: list[Point] | None = Field(None, max_length=2, description="[[lo, hi], ...]; default: the preset's.")
    resolution: int = Field(51, ge=2, le=100_000)


class ConvexityRequest(_Strict):
    """Sample the box for negative curvature and a Jensen counterexample."""

    function: str = FUNCTION_FIELD
    box: list[Point] = Field(..., min_length=1, max_length=64)
    samples: int = Field(256, ge=1, le=4096)
    seed: int = Field(0, ge=0, le=2**63 - 1)


class StationaryPointRequest(_Strict):
    """Classify the point x."""

    function: str = FUNCTION_FIELD
    x: Point = Field(..., min_length=1, max_length=64)
    tol: float = Field(1e-6, gt=0, le=1.0)


class ConstrainedRequest(_Strict):
    """Minimize over a ball or a half-space by projection, penalty or the Lagrangian."""

    function: str = FUNCTION_FIELD
    x0: Point = Field(..., min_length=1, max_length=64)
    constraint: Constraint
    method: Method = "projected_gd"
    lr: float = Field(0.1, gt=0, le=1e6)
    steps: int = Field(50, ge=0, le=10_000_000)
    penalty: float = Field(10.0, gt=0, le=1e9, description="μ of the penalty method.")


class LinregRequest(_OneOrMany):
    """Train linear regression on airfoil (or synthetic data) with one or several optimizers."""

    dataset: Dataset = "airfoil"
    batch_size: int = Field(10, ge=1, le=1500)
    epochs: int = Field(2, ge=1, le=10_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
