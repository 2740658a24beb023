"""Learning-rate schedules: each a function of the global step, with optional linear warm-up."""

import itertools
import math

import pytest

from service.jobspec.spec import SchedulerSpec
from service.training import lr_at


def _lrs(spec: SchedulerSpec, epochs: int = 4, steps_per_epoch: int = 10) -> list[float]:
    return [
        lr_at(spec, base_lr=0.5, step=s, steps_per_epoch=steps_per_epoch, epochs=epochs)
        for s in range(epochs * steps_per_epoch)
    ]


def test_constant_schedule_keeps_the_base_rate() -> None:
    assert set(_lrs(SchedulerSpec(name="constant"))) == {0.5}


def test_step_schedule_decays_every_step_size_epochs() -> None:
    lrs = _lrs(SchedulerSpec(name="step", step_size=2, gamma=0.1))
    assert lrs[0] == lrs[19] == 0.5
    assert lrs[20] == lrs[39] == pytest.approx(0.05)


def test_exponential_schedule_decays_each_epoch() -> None:
    lrs = _lrs(SchedulerSpec(name="exponential", gamma=0.5))
    assert [lrs[i * 10] for i in range(4)] == pytest.approx([0.5, 0.25, 0.125, 0.0625])


def test_cosine_schedule_anneals_per_step_towards_zero() -> None:
    lrs = _lrs(SchedulerSpec(name="cosine"))
    assert lrs[0] == 0.5
    assert lrs[20] == pytest.approx(0.25)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert lrs[-1] == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 39 / 40)))


def test_warmup_rises_linearly_from_a_tenth_of_the_rate() -> None:
    lrs = _lrs(SchedulerSpec(name="constant", warmup_epochs=1.0))
    assert lrs[0] == pytest.approx(0.05)
    assert lrs[5] == pytest.approx(0.5 * (0.1 + 0.9 * 0.5))
    assert lrs[10:] == [0.5] * 30
