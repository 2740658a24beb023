"""service.training.downsample: min/max buckets that keep the first, last, lowest and highest points."""

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.records import StepRecord
from service.training.downsample import downsample_steps


def _series(losses: list[float]) -> list[StepRecord]:
    return [StepRecord(i, 1, i * 32, loss) for i, loss in enumerate(losses, start=1)]


def test_short_series_and_no_limit_are_returned_whole():
    points = _series([3.0, 2.0, 1.0])
    assert downsample_steps(points, None) == points
    assert downsample_steps(points, 3) == points


def test_a_spike_survives_thinning_a_long_series():
    losses = [2.0 - i / 10_000 for i in range(10_000)]
    losses[6_543] = 50.0  # one divergent batch
    thin = downsample_steps(_series(losses), 100)
    assert len(thin) <= 100
    assert 6_544 in [p.step for p in thin] and max(p.loss for p in thin) == 50.0


def test_thinned_series_keeps_first_last_and_global_extremes_in_step_order():
    losses = [math.sin(i / 50) + i / 1000 for i in range(5_000)]
    thin = downsample_steps(_series(losses), 50)
    steps = [p.step for p in thin]
    assert steps == sorted(set(steps))
    assert steps[0] == 1 and steps[-1] == 5_000
    assert min(p.loss for p in thin) == min(losses) and max(p.loss for p in thin) == max(losses)


def test_each_bucket_is_represented():
    thin = downsample_steps(_series([float(i % 7) for i in range(1_000)]), 40)
    steps = [p.step for p in thin]
    assert 36 <= len(thin) <= 40  # the extremes may fall in a bucket and be picked once
    assert max(b - a for a, b in itertools.pairwise(steps)) < 1_000 / 10  # no long gap


def test_fewer_than_four_points_cannot_keep_the_extremes():
    with pytest.raises(ValueError, match="at least 4"):
        downsample_steps(_series([1.0] * 10), 3)


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.integers(4, 120),
)
def test_never_more_than_asked_and_always_the_endpoints_and_extremes(losses, max_points):
    points = _series(losses)
    thin = downsample_steps(points, max_points)
    assert len(thin) <= max_points
    assert thin[0] == points[0] and thin[-1] == points[-1]
    assert min(p.loss for p in thin) == min(losses) and max(p.loss for p in thin) == max(losses)
    assert all(p in points for p in thin)
