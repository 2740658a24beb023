"""JSON-safe numbers for the lab's results: JSON has no inf or nan, so they are reported as null."""

import math
from collections.abc import Sequence

DIVERGENCE_BOUND = 1e10  # a coordinate beyond ±this counts as diverged


def finite_or_none(value: float) -> float | None:
    """The value, or None when it is inf or nan."""
    return value if math.isfinite(value) else None


def finite_list(values: Sequence[float]) -> list[float | None]:
    """finite_or_none for each entry."""
    return [v if math.isfinite(v) else None for v in values]
