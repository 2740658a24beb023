"""Database plumbing: the declarative base, engines (SQLite pragmas here), sessions and migrations."""

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import URL, DateTime, Dialect, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

# The migrations: alembic/ at the top of a source checkout; a wheel carries the same files as service/migrations
# (setup.py maps the folder there), since a top-level `alembic` would shadow the alembic library itself.
_PACKAGED = Path(__file__).resolve().parents[1] / "migrations"
ALEMBIC_DIR = _PACKAGED if (_PACKAGED / "env.py").is_file() else Path(__file__).resolve().parents[2] / "alembic"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes the next SQLite transaction take the write lock at BEGIN.
IMMEDIATE = "convlab_begin_immediate"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose constraints get stable, migration-friendly names."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def make_engine(url: str, *, statement_timeout_ms: int = 0, lock_timeout_ms: int = 0, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout and BEGIN IMMEDIATE on request;
    PostgreSQL gets the statement and lock timeouts given (0: none), set on each connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        options = " ".join(
            f"-c {name}={ms}"
            for name, ms in (("statement_timeout", statement_timeout_ms), ("lock_timeout", lock_timeout_ms))
            if ms
        )
        if options:
            kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "options": options}
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from the sqlite3 driver so that SQLAlchemy's "begin" hook decides its kind.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def begin_write(session: Session) -> None:
    """Start `session`'s transaction holding the write lock (SQLite BEGIN IMMEDIATE; no-op elsewhere)."""
    if session.in_transaction():
        raise RuntimeError("begin_write must start a fresh transaction")
    session.connection(execution_options={IMMEDIATE: True})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to `engine`; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    """An Alembic Config for `url` using convlab's migrations (the repository's alembic/ folder, or the wheel's)."""
    from alembic.config import Config

    if not (ALEMBIC_DIR / "env.py").is_file():
        raise RuntimeError(f"migrations not found in {ALEMBIC_DIR}: install convlab from its wheel or source tree")
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade_database(url: str, revision: str = "base") -> None:
    """Revert the Alembic migrations down to `revision`."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest migration's revision: what an up-to-date database is at."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


def schema_revision(session: Session) -> str | None:
    """The Alembic revision of the database `session` talks to (None before any migration)."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(session.connection()).get_current_revision()


def current_revision(url: str) -> str | None:
    """The Alembic revision the database at `url` is at (None if it was never migrated)."""
    from alembic.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


class DiskFull(SQLAlchemyError):
    """A write refused before it is made: the disk under the SQLite database has too little room left for it.
    A database error like SQLite's own SQLITE_FULL, raised early enough that ending the job still fits."""


# Room kept free for ending a job (its status, events and lease) once checkpoints no longer fit: when SQLite itself
# runs out of space mid-write, the failed write may leave no room even for that.
WRITE_RESERVE_BYTES = 512 * 1024


def is_disk_full(exc: BaseException) -> bool:
    """Whether a database error says its disk is full (SQLite's SQLITE_FULL, PostgreSQL's disk_full or ENOSPC)."""
    original = getattr(exc, "orig", None) or exc
    message = str(original).lower()
    full = "database or disk is full" in message or "no space left on device" in message
    return full or getattr(original, "sqlstate", None) == "53100"


def _sqlite_file(url: str | URL) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def ensure_room(url: str | URL, needed: int) -> None:
    """Raise DiskFull unless the filesystem under a SQLite database (no check elsewhere) has `needed` bytes free
    beyond WRITE_RESERVE_BYTES."""
    database = _sqlite_file(url)
    if database is None:
        return
    free = shutil.disk_usage(database.parent).free
    if free < needed + WRITE_RESERVE_BYTES:
        raise DiskFull(f"database or disk is full: {free:,} bytes free under {database.parent}, {needed:,} needed")


def low_disk_problem(url: str) -> str | None:
    """What is wrong with the free space under a SQLite database (None if enough, or not a SQLite file): less than
    64 MiB or 5% of its filesystem, whichever is smaller, is too little for checkpoints to be written, and less
    than twice the write reserve is never enough."""
    database = _sqlite_file(url)
    if database is None:
        return None
    usage = shutil.disk_usage(database.parent)
    if usage.free >= max(min(64 * 2**20, usage.total // 20), 2 * WRITE_RESERVE_BYTES):
        return None
    return f"database disk nearly full: {usage.free:,} bytes free of {usage.total:,} under {database}"
