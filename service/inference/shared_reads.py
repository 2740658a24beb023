"""Database reads shared by the requests that wait on them, each begun after every request it answers arrived.

What a model name means and whose an API token is must be read for every request: a move or a revocation shows
on the very next one, in every API process. A request need not have a read of its own, though: requests for the
same key that arrive while a read runs wait for the next read, which begins once the running one ends (and at
least `spacing` seconds after it began) and answers all of them. Under load that is a few hundred reads a second
at most instead of one per request; an idle server reads once per request.
"""

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from anyio import to_thread

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
REMEMBERED_KEYS = 1024  # keys whose last read time is kept; past that the memory starts over
# The dynamic batcher's delay, roughly: a request waits at most this much longer for a read that began after it
# arrived, and under load each read answers more requests.
READ_SPACING_S = 0.005


class SharedReads(Generic[K, V]):
    """Reads of `read(key)` on a worker thread, one at a time per key, each shared by the requests that came
    before it began."""

    def __init__(self, read: Callable[[K], V], *, spacing: float = READ_SPACING_S) -> None:
        self.read = read
        self.spacing = spacing
        self._waiting: dict[K, asyncio.Future[V]] = {}  # requests for the next read of a key
        self._flying: dict[K, asyncio.Task[None]] = {}  # the task reading a key over and over while wanted
        self._started: dict[K, float] = {}  # when the last read of a key began (event loop time)

    async def get(self, key: K) -> V:
        """`read(key)`, as done by a read that begins after this call; its exception if it raised one."""
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieve)
            if key not in self._flying:
                self._flying[key] = asyncio.create_task(self._fly(key))
        # Shielded: a request that goes away must not cancel the read the others wait for.
        return await asyncio.shield(waiting)

    async def _fly(self, key: K) -> None:
        """Read `key` for each batch of waiting requests, until none is left."""
        loop = asyncio.get_running_loop()
        try:
            while key in self._waiting:
                if (wait := self._started.get(key, -self.spacing) + self.spacing - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self._started[key] = loop.time()
                batch = self._waiting.pop(key)
                try:
                    batch.set_result(await to_thread.run_sync(self.read, key))
                except Exception as exc:  # NotFound, Conflict...: every request of the batch gets it
                    batch.set_exception(exc)
                except BaseException:
                    batch.set_exception(RuntimeError("the server is shutting down"))
                    raise
        finally:
            del self._flying[key]
            if len(self._started) > REMEMBERED_KEYS:  # keys asked for once: forget them all, not one by one
                self._started.clear()
            if (stranded := self._waiting.pop(key, None)) is not None:  # only when cancelled mid-read
                stranded.set_exception(RuntimeError("the server is shutting down"))

    async def aclose(self) -> None:
        """Wait for the reads in flight."""
        await asyncio.gather(*self._flying.values(), return_exceptions=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a batch's error as seen, so a batch whose requests all went away logs no 'never retrieved'."""
    if not future.cancelled():
        future.exception()
