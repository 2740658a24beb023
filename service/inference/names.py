"""What a model name means now, read in the database for every request (an alias move shows on the next one).

The read is shared by the requests that arrived before it began (SharedReads) and small: one indexed statement
of three ids (VersionReader); the full resolution, with its JSON columns, is read again only when one of those
ids changed.
"""

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.storage import registry
from service.storage.registry import DEFAULT_ALIAS, ResolvedVersion
from service.storage.registry_tables import ModelAlias, ModelVersion, RegisteredModel

Key = tuple[str, str | None, int | None]
Stamp = tuple[int, int | None, int | None]  # a version row's id, job id and checkpoint id
REMEMBERED_NAMES = 1024  # resolutions kept per process; past that the memory starts over


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

    def __call__(self, key: Key) -> ResolvedVersion:
        """The version (name, alias or version) means now; NotFound or Conflict as registry.resolve_model_version."""
        name, alias, version = key
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
