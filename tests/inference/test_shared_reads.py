"""SharedReads (model names, API tokens): requests for a key share database reads, but each is answered by a read
that began after it arrived (so an alias move is seen by the next request), and a read's error reaches every
request it answers."""

import asyncio
import threading
import time

import pytest

from service.errors import NotFound
from service.inference.names import Key
from service.inference.shared_reads import SharedReads
from service.storage.registry import ResolvedVersion


def resolved(version: int) -> ResolvedVersion:
    return ResolvedVersion("m", version, "prod", 1, 1, 1, "0" * 64, ("a", "b"), (1, 28, 28))


class SlowDatabase:
    """A read that takes `seconds` in its thread and answers the version current when it began."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.version = 1
        self.reads = 0
        self.lock = threading.Lock()

    def read(self, key: Key) -> ResolvedVersion:
        name = key[0]
        with self.lock:
            self.reads += 1
            current = self.version
        if name == "missing":
            raise NotFound(f"no model {name!r}")
        time.sleep(self.seconds)
        return resolved(current)


def test_requests_arriving_during_a_read_share_the_next_one() -> None:
    database = SlowDatabase(0.05)

    async def main() -> list[int]:
        reads = SharedReads(database.read, spacing=0.0)
        first = asyncio.create_task(reads.get(("m", None, None)))
        await asyncio.sleep(0.01)  # the first read is running
        rest = [asyncio.create_task(reads.get(("m", None, None))) for _ in range(20)]
        answers = [(await task).version for task in [first, *rest]]
        await reads.aclose()
        return answers

    assert asyncio.run(main()) == [1] * 21
    assert database.reads == 2  # the first request's read, and one for the twenty that came during it


def test_a_move_during_a_read_is_seen_by_requests_that_arrived_after_the_move() -> None:
    database = SlowDatabase(0.05)

    async def main() -> tuple[int, int]:
        reads = SharedReads(database.read, spacing=0.0)
        before = asyncio.create_task(reads.get(("m", "prod", None)))
        await asyncio.sleep(0.01)  # its read began with version 1 current
        database.version = 2  # the move commits while that read runs
        after = asyncio.create_task(reads.get(("m", "prod", None)))
        return (await before).version, (await after).version

    assert asyncio.run(main()) == (1, 2)


def test_a_read_error_reaches_every_request_and_the_next_request_reads_again() -> None:
    database = SlowDatabase(0.0)

    async def main() -> list[BaseException | ResolvedVersion]:
        reads = SharedReads(database.read, spacing=0.0)
        tasks = [asyncio.create_task(reads.get(("missing", None, None))) for _ in range(5)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    assert all(isinstance(answer, NotFound) for answer in asyncio.run(main()))
    with pytest.raises(NotFound):
        asyncio.run(SharedReads(database.read, spacing=0.0).get(("missing", None, None)))
    assert database.reads == 2


def test_a_request_that_goes_away_does_not_cancel_the_read_others_wait_for() -> None:
    database = SlowDatabase(0.05)

    async def main() -> int:
        reads = SharedReads(database.read, spacing=0.0)
        leaving = asyncio.create_task(reads.get(("m", None, None)))
        staying = asyncio.create_task(reads.get(("m", None, None)))
        await asyncio.sleep(0.01)
        leaving.cancel()
        return (await staying).version

    assert asyncio.run(main()) == 1
