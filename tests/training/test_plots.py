"""service.training.plots: thinning a history and drawing it."""

import pytest

from service.training.plots import downsample_steps, render_history
from service.training.records import StepRecord


def test_downsample_steps_averages_buckets_and_keeps_the_last_step():
    points = [StepRecord(i, 1, i * 10, float(i)) for i in range(1, 101)]
    thin = downsample_steps(points, 4)
    assert [p.step for p in thin] == [25, 50, 75, 100] and thin[0].loss == pytest.approx(13.0)
    assert downsample_steps(points, None) == points


def test_render_history_makes_png_and_svg():
    steps = [StepRecord(i, 1 + i // 10, i * 256, 1 / i) for i in range(1, 20)]
    assert render_history(steps, [], title="t", fmt="png").startswith(b"\x89PNG")
    assert b"<svg" in render_history(steps, [], title="t", fmt="svg")[:500]
