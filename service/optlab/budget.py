"""A lab call's compute budget: loops call `check_budget()`, which stops the work once its time is spent.

The deadline lives in a context variable set by `work_budget` around one call, in the thread doing the work, so
the lab's functions need no extra argument and run unbounded when called outside a budget (tests, scripts).
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from service.errors import InvalidInput

_deadline: ContextVar[tuple[float, float] | None] = ContextVar("convlab_lab_deadline", default=None)


class BudgetExceeded(InvalidInput):
    """A lab computation ran out of its time budget and was stopped."""


@contextmanager
def work_budget(seconds: float) -> Iterator[None]:
    """Within the block, `check_budget` raises BudgetExceeded once `seconds` have passed."""
    token = _deadline.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def check_budget() -> None:
    """Stop the current computation (BudgetExceeded) if its budget is spent; cheap enough for every step."""
    budget = _deadline.get()
    if budget is not None and time.monotonic() > budget[0]:
        raise BudgetExceeded(
            f"the computation was stopped after its budget of {budget[1]:g} s of work (CONVLAB_LAB_MAX_SECONDS); "
            "ask for fewer steps or optimizers, a smaller grid, or a simpler function"
        )
