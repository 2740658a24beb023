"""Load shedding: a predict request that could not be served within a bounded wait is refused at once (503 with
Retry-After) instead of joining a queue that only grows.

The bound is a count of requests in flight: what this process has been serving per second while busy, times the
longest wait allowed (`predict_max_wait_ms`), and never under one full batch. The rate is measured, not
configured: the time between answers while requests overlapped, averaged over the last fifty or so (batched
answers come in clumps; the average spreads them). The first answer of a busy spell is not a gap (its time
includes the idle spell before, or a model load), so a quiet server does not look slow; until requests have
overlapped at all, nothing is refused.
"""

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.errors import Overloaded

SMOOTHING = 0.02  # weight of each new gap between answers in the running average (about the last 50)


class LoadShedder:
    """Counts the predict requests in flight on this event loop and refuses one past the bound."""

    def __init__(self, *, max_wait_s: float, floor: int, clock: Callable[[], float] = time.perf_counter) -> None:
        self.max_wait_s = max_wait_s  # 0: never shed
        self.floor = floor
        self.clock = clock
        self.pending = 0
        self.gap = 0.0  # seconds between answers while busy: 1 / the rate this process serves at (0: unknown)
        self._last: float | None = None  # when the last answer of this busy spell went out

    def bound(self) -> float:
        """How many requests may be in flight: those served within the wait, at least `floor`."""
        if self.gap <= 0:
            return math.inf
        return max(self.floor, math.floor(self.max_wait_s / self.gap))

    def refusal(self) -> Overloaded | None:
        """The 503 for a request arriving now, or None while there is room (the serving lane asks before it reads
        the body: service/api/plumbing/lane.py)."""
        if self.max_wait_s <= 0 or self.pending < self.bound():
            return None
        wait = self.pending * self.gap
        return Overloaded(
            f"the server is overloaded: {self.pending} predict requests are in flight, about {wait:.1f} s of "
            f"work, more than predict_max_wait_ms allows; retry later",
            retry_after=wait,
        )

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place in flight for the request; Overloaded when there is none."""
        if (refused := self.refusal()) is not None:
            raise refused
        if self.pending == 0:
            self._last = None  # a busy spell starts
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1
            self._answered()

    def _answered(self) -> None:
        now, last = self.clock(), self._last
        self._last = now
        if last is not None:
            gap = now - last
            self.gap = gap if self.gap <= 0 else self.gap + SMOOTHING * (gap - self.gap)
