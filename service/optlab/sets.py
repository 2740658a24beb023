"""The feasible sets of constrained problems (a ball, a half-space): values, gradients and projections in plain
floats, so the request models that name them import no torch."""

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidInput

Method = Literal["projected_gd", "penalty", "lagrangian"]


class _Set(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class Ball(_Set):
    """The ball ‖x − center‖ ≤ radius."""

    kind: Literal["ball"]
    center: list[float] = Field(..., min_length=1, max_length=64)
    radius: float = Field(..., gt=0, le=1e6)

    def check(self, dimension: int) -> None:
        """Raise InvalidInput unless the center fits the dimension."""
        _check_length("center", self.center, dimension)

    def value(self, x: list[float]) -> float:
        """c(x): negative inside, zero on the boundary, positive outside."""
        return math.dist(x, self.center) - self.radius

    def gradient(self, x: list[float]) -> list[float]:
        """∇c(x): the outward unit vector (zero at the center)."""
        distance = math.dist(x, self.center)
        return [(v - c) / distance if distance > 0 else 0.0 for v, c in zip(x, self.center, strict=True)]

    def project(self, x: list[float]) -> list[float]:
        """The nearest point of the ball."""
        if self.value(x) <= 0:
            return x
        scale = self.radius / math.dist(x, self.center)
        return [c + (v - c) * scale for v, c in zip(x, self.center, strict=True)]


class HalfSpace(_Set):
    """The half-space normal·x ≤ offset."""

    kind: Literal["halfspace"]
    normal: list[float] = Field(..., min_length=1, max_length=64)
    offset: float = Field(..., ge=-1e6, le=1e6)

    def check(self, dimension: int) -> None:
        """Raise InvalidInput unless the normal fits the dimension and is not zero."""
        _check_length("normal", self.normal, dimension)
        # ‖normal‖² divides the projection: a normal so small that its square underflows counts as zero too
        if not sum(a * a for a in self.normal) > 0:
            raise InvalidInput("the half-space normal must not be zero")

    def value(self, x: list[float]) -> float:
        """c(x): negative inside, zero on the boundary, positive outside (inf/nan, never an exception)."""
        return sum(a * v for a, v in zip(self.normal, x, strict=True)) - self.offset

    def gradient(self, x: list[float]) -> list[float]:
        """∇c(x): the normal."""
        return list(self.normal)

    def project(self, x: list[float]) -> list[float]:
        """The nearest point of the half-space."""
        excess = self.value(x)
        if excess <= 0:
            return x
        norm2 = sum(a * a for a in self.normal)
        return [v - excess * a / norm2 for v, a in zip(x, self.normal, strict=True)]


# The body's shape depends on `kind`: a discriminated union, so the OpenAPI document says which fields each needs.
Constraint = Annotated[Ball | HalfSpace, Field(discriminator="kind")]


def _check_length(name: str, vector: list[float], dimension: int) -> None:
    if len(vector) != dimension:
        raise InvalidInput(f"{name} has {len(vector)} coordinates but the function has {dimension}")
