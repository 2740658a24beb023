"""What a model name means now, read once for every request waiting on it.

Serving by name must honour an alias move on the very next request, in every API process, so each request's
answer has to come from a database read that began after the request arrived. It need not be a read of its
own: requests for the same (name, alias, version) that arrive while a read is running wait for the next one,
which begins as soon as the running one ends (and at least READ_SPACING_S after it began) and answers all of
them. Under load that is a few hundred reads a second at most instead of one per request; an idle server reads
once per request, as before.

The read itself is small (VersionReader): one indexed statement of three ids; the full resolution, with its
JSON columns, is read again only when one of those ids changed.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.storage import registry
from service.storage.registry import DEFAULT_ALIAS, ResolvedVersion
from service.storage.registry_tables import ModelAlias, ModelVersion, RegisteredModel

Key = tuple[str, str | None, int | None]
Read = Callable[[str, str | None, int | None], ResolvedVersion]
Stamp = tuple[int, int | None, int | None]  # a version row's id, job id and checkpoint id
REMEMBERED_NAMES = 1024  # resolutions kept per process; past that the memory starts over
# At most one read of a name begins per this long (the dynamic batcher's default delay): a request waits at most
# this much longer for a read that began after it arrived, and under load each read answers more requests.
READ_SPACING_S = 0.005


def read_stamp(session: Session, name: str, alias: str | None, version: int | None) -> Stamp | None:
    """What a resolution of (name, alias or version) depends on that can change: which version row it finds
    (an alias move) and that row's job and checkpoint (nulled when the job is deleted). None: nothing found."""
    query = select(ModelVersion.id, ModelVersion.job_id, ModelVersion.checkpoint_id).join(RegisteredModel)
    query = query.where(RegisteredModel.name == name)
    if version is not None:
        query = query.where(ModelVersion.version == version)
    else:
        query = query.join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
        query = query.where(ModelAlias.name == (alias or DEFAULT_ALIAS))
    row = session.connection().execute(query).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


class VersionReader:
    """Resolves a model name in the database: a read of its stamp, and the full resolution only when the stamp
    is one this process has not resolved before (versions' other columns never change)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self._known: dict[Key, tuple[Stamp, ResolvedVersion]] = {}

    def __call__(self, name: str, alias: str | None, version: int | None) -> ResolvedVersion:
        """The version (name, alias or version) means now; NotFound or Conflict as registry.resolve_model_version."""
        key = (name, alias, version)
        with self.session_factory() as session:
            stamp = read_stamp(session, name, alias, version)
            known = self._known.get(key)
            if stamp is not None and known is not None and known[0] == stamp:
                return known[1]
            resolved = registry.resolve_model_version(session, name, alias, version)
        if stamp is not None:
            if len(self._known) >= REMEMBERED_NAMES:
                self._known.clear()
            self._known[key] = (stamp, resolved)
        return resolved


class NameReads:
    """Single-flight reads of `read(name, alias, version)`, each begun after every request it answers arrived."""

    def __init__(self, read: Read) -> None:
        self.read = read
        self._waiting: dict[Key, asyncio.Future[ResolvedVersion]] = {}  # requests for the next read of a key
        self._flying: dict[Key, asyncio.Task[None]] = {}  # the task reading a key over and over while wanted
        self._started: dict[Key, float] = {}  # when the last read of a key began (event loop time)

    async def resolve(self, name: str, alias: str | None, version: int | None) -> ResolvedVersion:
        """The version the name means, as read by a read that begins after this call."""
        key = (name, alias, version)
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieve)
            if key not in self._flying:
                self._flying[key] = asyncio.create_task(self._fly(key))
        # Shielded: a request that goes away must not cancel the read the others wait for.
        return await asyncio.shield(waiting)

    async def _fly(self, key: Key) -> None:
        """Read `key` for each batch of waiting requests, until none is left."""
        loop = asyncio.get_running_loop()
        try:
            while key in self._waiting:
                # Reads of one name begin at most every READ_SPACING_S: under load, more requests share each.
                if (wait := self._started.get(key, -READ_SPACING_S) + READ_SPACING_S - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self._started[key] = loop.time()
                batch = self._waiting.pop(key)
                try:
                    batch.set_result(await to_thread.run_sync(self.read, *key))
                except Exception as exc:  # NotFound, Conflict...: every request of the batch gets it
                    batch.set_exception(exc)
                except BaseException:
                    batch.set_exception(RuntimeError("the server is shutting down"))
                    raise
        finally:
            del self._flying[key]
            if len(self._started) > REMEMBERED_NAMES:  # names asked for once: forget them all, not one by one
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
