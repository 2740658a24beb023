"""Two minutes of the chaos soak (tests/safety/soak.py) on each database: workers and the API killed (kill -9 and
SIGTERM) and, on PostgreSQL, the database crashed, while replicated jobs train and clients poll. Every job must
succeed with each step recorded once, every replica must be bit-identical, and no answer may be a 5xx but 503."""

import pytest

from tests.safety.soak import soak

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_minutes_of_chaos_lose_nothing(backend: str) -> None:
    summary = soak(backend, minutes=2.0, seed=1)
    assert summary["problems"] == [], summary
    assert summary["jobs"] >= 9 and sum(summary["actions"].values()) >= 10, summary
