"""service.training.plots: drawing a history."""

from service.training.plots import render_history
from service.training.records import StepRecord


def test_render_history_makes_png_and_svg():
    steps = [StepRecord(i, 1 + i // 10, i * 256, 1 / i) for i in range(1, 20)]
    assert render_history(steps, [], title="t", fmt="png").startswith(b"\x89PNG")
    assert b"<svg" in render_history(steps, [], title="t", fmt="svg")[:500]
