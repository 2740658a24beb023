"""In-process limits: request rates (token buckets), failed-authentication lockouts, lab compute slots.

Each API process keeps its own counters: with N API processes a caller gets up to N times the configured rate.
They live in memory on purpose (a rate check must not cost a database write); docs/security.md says so.
"""

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from service.config import AccessSettings
from service.errors import TooManyRequests

MAX_KEYS = 10_000  # callers remembered at once; beyond this, idle ones are forgotten


@dataclass
class TokenBucket:
    """`rate` requests per second on average, up to `burst` at once."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        """Spend one token if there is one and return 0; else return the seconds until there will be."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per caller; `check` raises TooManyRequests when the caller's bucket is empty."""

    def __init__(self, *, name: str, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str, *, rate: float | None = None) -> None:
        """Count one request of `key`; 429 with Retry-After if it is over the rate: `rate` when the caller has
        one of its own (a token's), else the limiter's; a rate of 0 is no limit."""
        rate = self.rate if rate is None else rate
        if rate <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
                self._forget_idle(now)
            bucket = self._buckets.setdefault(key, TokenBucket(rate, self.burst, updated=now))
            bucket.rate = rate  # a token's rate changed: the next refill uses the new one
            wait = bucket.take(now)
        if wait > 0:
            raise TooManyRequests(
                f"too many {self.name} requests: the limit is {rate:g} per second with bursts of {self.burst}",
                retry_after=wait,
            )

    def _forget_idle(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * b.rate >= b.burst]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]


class FailedLogins:
    """Counts failed authentications per client address; too many within a window lock the address out."""

    def __init__(
        self, *, limit: int, window: float, lockout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """429 with Retry-After while `address` is locked out."""
        with self._lock:
            until = self._locked_until.get(address, 0.0)
        wait = until - self.clock()
        if wait > 0:
            raise TooManyRequests(
                f"too many failed authentications from this address; try again in {math.ceil(wait)} s",
                retry_after=wait,
            )

    def record(self, address: str) -> None:
        """Count a failed authentication from `address`; lock it out when it reaches the limit."""
        now = self.clock()
        with self._lock:
            if len(self._failures) >= MAX_KEYS and address not in self._failures:
                self._failures.clear()  # a flood of addresses: start counting afresh rather than grow
            failures = self._failures.setdefault(address, deque())
            failures.append(now)
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) >= self.limit:
                self._locked_until[address] = now + self.lockout
                failures.clear()


class ComputeSlots:
    """At most `size` lab computations at once; a caller waits up to `wait` seconds for a slot, then gets 429."""

    def __init__(self, *, size: int, wait: float) -> None:
        self.size = size
        self.wait = wait
        self._semaphore = threading.BoundedSemaphore(size)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the duration of the block."""
        if not self._semaphore.acquire(timeout=self.wait):
            raise TooManyRequests(
                f"all {self.size} lab computation slots are busy; try again shortly", retry_after=max(1.0, self.wait)
            )
        try:
            yield
        finally:
            self._semaphore.release()


class Guards:
    """One API process's limiters, built from the access settings."""

    def __init__(self, *, predict: RateLimiter, lab: RateLimiter, logins: FailedLogins, slots: ComputeSlots) -> None:
        self.rates = {"predict": predict, "lab": lab}
        self.logins = logins
        self.slots = slots

    @classmethod
    def from_settings(cls, access: AccessSettings) -> "Guards":
        """The limiters CONVLAB_* configures (lab slots: CONVLAB_LAB_CONCURRENCY, else one per CPU)."""
        return cls(
            predict=RateLimiter(name="predict", rate=access.predict_rate, burst=access.predict_burst),
            lab=RateLimiter(name="lab", rate=access.lab_rate, burst=access.lab_burst),
            logins=FailedLogins(
                limit=access.max_auth_failures,
                window=access.auth_failure_window_seconds,
                lockout=access.auth_lockout_seconds,
            ),
            slots=ComputeSlots(size=access.lab_concurrency or os.cpu_count() or 1, wait=access.lab_queue_seconds),
        )
