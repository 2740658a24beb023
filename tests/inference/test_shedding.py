"""LoadShedder on a hand-driven clock: the bound follows the rate answers went out at while requests overlapped,
never drops under one batch, ignores idle time, and a refusal is a 503 with Retry-After."""

import contextlib

import pytest

from service.errors import Overloaded
from service.inference.shedding import LoadShedder


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer_in_turn(shedder: LoadShedder, clock: Clock, *, answers: int, gap: float) -> None:
    """`answers` requests, each admitted while the previous one is still in flight, answered `gap` apart."""
    held = shedder.admit()
    held.__enter__()
    for _ in range(answers):
        following = shedder.admit()
        following.__enter__()
        clock.now += gap
        held.__exit__(None, None, None)
        held = following
    clock.now += gap
    held.__exit__(None, None, None)


def test_nothing_is_refused_before_requests_have_overlapped() -> None:
    shedder = LoadShedder(max_wait_s=0.5, floor=4, clock=Clock())
    with contextlib.ExitStack() as stack:
        for _ in range(1000):
            stack.enter_context(shedder.admit())


def test_the_bound_is_the_wait_times_the_measured_rate_and_past_it_a_503_with_retry_after() -> None:
    clock = Clock()
    shedder = LoadShedder(max_wait_s=0.5, floor=4, clock=clock)
    answer_in_turn(shedder, clock, answers=200, gap=0.01)  # 100 answers per second while busy
    assert shedder.bound() in (49, 50)  # 0.5 s / 10 ms, give or take the float clock
    with contextlib.ExitStack() as stack:
        for _ in range(int(shedder.bound())):
            stack.enter_context(shedder.admit())
        with pytest.raises(Overloaded) as refused:
            stack.enter_context(shedder.admit())
    assert refused.value.status_code == 503 and int(refused.value.headers["Retry-After"]) >= 1
    assert shedder.pending == 0


def test_a_slow_rate_still_admits_one_full_batch() -> None:
    clock = Clock()
    shedder = LoadShedder(max_wait_s=0.5, floor=32, clock=clock)
    answer_in_turn(shedder, clock, answers=200, gap=1.0)
    assert shedder.bound() == 32


def test_idle_time_between_busy_spells_is_not_service_time() -> None:
    clock = Clock()
    shedder = LoadShedder(max_wait_s=0.5, floor=4, clock=clock)
    answer_in_turn(shedder, clock, answers=200, gap=0.01)
    for _ in range(100):  # lone requests, a minute apart
        clock.now += 60
        with shedder.admit():
            clock.now += 0.01
    assert shedder.bound() in (49, 50)  # 0.5 s / 10 ms, give or take the float clock


def test_a_max_wait_of_zero_never_refuses() -> None:
    clock = Clock()
    shedder = LoadShedder(max_wait_s=0.0, floor=1, clock=clock)
    answer_in_turn(shedder, clock, answers=50, gap=1.0)
    with contextlib.ExitStack() as stack:
        for _ in range(1000):
            stack.enter_context(shedder.admit())
