"""Thinning a long step series for a client or a figure without hiding its spikes.

Min/max buckets (the M4 idea): the interior is cut into equal buckets and each keeps its lowest and highest
point, in step order, so a divergence or a loss spike survives however far the series is thinned. The first and
last points and the global minimum and maximum are always kept.
"""

from collections.abc import Sequence

from service.records import StepRecord

MIN_POINTS = 4  # first, last, global minimum and global maximum


def downsample_steps(points: Sequence[StepRecord], max_points: int | None) -> list[StepRecord]:
    """At most `max_points` of `points` (in step order): first, last, global min and max, and each bucket's
    min and max loss; all of them when there are no more than `max_points`."""
    if max_points is None:
        return list(points)
    return [points[i] for i in minmax_indices([p.loss for p in points], max_points)]


def minmax_indices(values: Sequence[float], max_points: int) -> list[int]:
    """The positions `downsample_steps` keeps of a series of `values` (all when there are at most `max_points`)."""
    n = len(values)
    if n <= max_points:
        return list(range(n))
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}, got {max_points}")
    lowest = min(range(n), key=values.__getitem__)
    highest = max(range(n), key=values.__getitem__)
    keep = {0, n - 1, lowest, highest}
    buckets = (max_points - len(keep)) // 2
    interior = n - 2
    for b in range(buckets):
        start, stop = 1 + b * interior // buckets, 1 + (b + 1) * interior // buckets
        if start < stop:
            span = range(start, stop)
            keep.add(min(span, key=values.__getitem__))
            keep.add(max(span, key=values.__getitem__))
    return sorted(keep)
