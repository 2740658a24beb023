"""A sweep's search space: dotted job-spec paths mapped to value lists, ranges or choices.

Every path is checked against the job spec (an unknown field or a whole group is refused, naming the path), and
every value a sampler could propose is validated as part of a job spec before the sweep is stored.
"""

import itertools
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.errors import InvalidInput, describe_validation_errors
from service.jobspec.paths import PathError, field_annotation, with_values
from service.jobspec.spec import JobRequest

Scalar = bool | int | float | str
Params = dict[str, Scalar]
GRID_DIGITS = 12  # grid points from float steps are rounded, so 0.1 + 0.2 reads as 0.3


class Dimension(BaseModel):
    """One searched spec field: `values` (a list), `low`/`high` (a range, optionally `log`, `step`, or a grid
    `count`), or `choices` (categories)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    values: list[Scalar] | None = Field(None, min_length=1)
    choices: list[Scalar] | None = Field(None, min_length=1)
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    count: int | None = Field(None, ge=2, le=1000, description="Grid points over the range (grid sampler).")

    @model_validator(mode="after")
    def _one_kind(self) -> "Dimension":
        ranged = self.low is not None or self.high is not None
        if sum((self.values is not None, self.choices is not None, ranged)) != 1:
            raise ValueError("give exactly one of values, choices, or low and high")
        if ranged:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if not self.low < self.high:
                raise ValueError("low must be below high")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
            if self.log and self.step is not None:
                raise ValueError("a log range cannot have a step (use count for a log grid)")
        elif self.step is not None or self.count is not None or self.log:
            raise ValueError("log, step and count apply to a low/high range only")
        listed = self.values if self.values is not None else self.choices
        if listed is not None and len({repr(v) for v in listed}) != len(listed):
            raise ValueError("the values repeat")
        return self

    @property
    def listed(self) -> list[Scalar] | None:
        """The values or choices, when the dimension is a list."""
        return self.values if self.values is not None else self.choices


def _annotation(path: str) -> Any:
    try:
        return field_annotation(path)
    except PathError as exc:
        raise InvalidInput(f"space.{path}: {exc}") from None


def _is_int_field(annotation: Any) -> bool:
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else ()
    kinds = set(members) or {annotation}
    return int in kinds and float not in kinds


class Space:
    """A validated search space: each dotted path with its dimension and whether the field holds integers."""

    def __init__(self, dimensions: dict[str, Dimension]) -> None:
        if not dimensions:
            raise InvalidInput("space: name at least one spec field to search")
        self.dimensions = dimensions
        self.integer = {path: _is_int_field(_annotation(path)) for path in dimensions}
        for path, dim in dimensions.items():
            if self.integer[path] and dim.low is not None:
                numbers = [dim.low, dim.high] + ([dim.step] if dim.step is not None else [])
                if any(n is not None and not float(n).is_integer() for n in numbers):
                    raise InvalidInput(f"space.{path}: an integer field needs integer low, high and step")

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> "Space":
        """The space described by `raw` (JSON); InvalidInput naming the path on any problem."""
        dimensions = {}
        for path, spec in raw.items():
            try:
                dimensions[path] = Dimension.model_validate(spec)
            except ValidationError as exc:
                raise InvalidInput(f"space.{path}: {describe_validation_errors(exc.errors())}") from None
        return cls(dimensions)

    def check_values(self, base: dict[str, Any], check: Callable[[JobRequest], object]) -> None:
        """Validate, as a job spec derived from `base`, every listed value and both ends of every range."""
        for path, dim in self.dimensions.items():
            candidates = dim.listed if dim.listed is not None else self._ends(path, dim)
            for value in candidates:
                try:
                    spec = JobRequest.model_validate(with_values(base, {path: value}))
                except ValidationError as exc:
                    raise InvalidInput(f"space.{path}: {value!r}: {describe_validation_errors(exc.errors())}") from None
                try:
                    check(spec)
                except InvalidInput as exc:
                    raise InvalidInput(f"space.{path}: {value!r}: {exc.detail}") from None

    def _ends(self, path: str, dim: Dimension) -> list[Scalar]:
        assert dim.low is not None and dim.high is not None
        return [int(dim.low), int(dim.high)] if self.integer[path] else [dim.low, dim.high]

    def grid_points(self, path: str) -> list[Scalar]:
        """The values a grid takes for `path`: the list, or the range cut by its step or count."""
        dim = self.dimensions[path]
        if dim.listed is not None:
            return list(dim.listed)
        assert dim.low is not None and dim.high is not None
        if dim.step is not None:
            n = math.floor((dim.high - dim.low) / dim.step + 1e-9) + 1
            points = [dim.low + i * dim.step for i in range(n)]
        elif dim.count is not None:
            if dim.log:
                a, b = math.log(dim.low), math.log(dim.high)
                points = [math.exp(a + (b - a) * i / (dim.count - 1)) for i in range(dim.count)]
            else:
                points = [dim.low + (dim.high - dim.low) * i / (dim.count - 1) for i in range(dim.count)]
        else:
            raise InvalidInput(f"space.{path}: a grid over a continuous range needs a step or a count")
        if self.integer[path]:
            return list(dict.fromkeys(round(p) for p in points))
        return [float(f"{p:.{GRID_DIGITS}g}") for p in points]

    def grid(self) -> list[Params]:
        """Every point of the grid, the last path varying fastest."""
        paths = list(self.dimensions)
        axes = [self.grid_points(path) for path in paths]
        return [dict(zip(paths, point, strict=True)) for point in itertools.product(*axes)]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Each path as an Optuna distribution (ranges of integer fields as integer distributions)."""
        out: dict[str, optuna.distributions.BaseDistribution] = {}
        for path, dim in self.dimensions.items():
            if dim.listed is not None:
                out[path] = optuna.distributions.CategoricalDistribution(dim.listed)
            elif self.integer[path]:
                assert dim.low is not None and dim.high is not None
                step = int(dim.step or 1)
                out[path] = optuna.distributions.IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=step)
            else:
                assert dim.low is not None and dim.high is not None
                out[path] = optuna.distributions.FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
        return out
