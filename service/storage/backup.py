"""Backups of a live database and their restore: SQLite through its online backup API, PostgreSQL through
pg_dump's custom format and pg_restore.

A backup is a consistent snapshot taken while workers write (SQLite copies the pages under one read transaction;
pg_dump reads in one repeatable-read snapshot), so a job that was running has its last checkpoint and the history
up to it. Restoring requeues such a job: its worker is not in the restored deployment, and the next claim resumes it
from that checkpoint, dropping the history past it, exactly as after a crash.
"""

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, inspect, make_url, select, text

from service.jobspec.status import JobStatus
from service.storage.db import current_revision, head_revision, make_engine, make_session_factory
from service.storage.jobs import add_status_event
from service.storage.orm import Job

RESTORED_REASON = "restored from a backup: requeued to resume from its last checkpoint"
TOOL_SECONDS = 3600.0  # how long pg_dump or pg_restore may take


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupSummary:
    """What a backup or restore wrote: the file or database, its size in bytes and its schema revision."""

    path: Path
    size: int
    revision: str | None

    def describe(self, verb: str) -> str:
        """One line for the operator."""
        return f"{verb} {self.path} ({self.size:,} bytes, schema revision {self.revision or 'none'})"


@dataclass(frozen=True)
class RestoreSummary:
    """What a restore did: the database (password hidden), its schema revision and the jobs it requeued."""

    database: str
    revision: str | None
    requeued: int

    def describe(self) -> str:
        """Lines for the operator: what was restored, and what to do next."""
        jobs = f"{self.requeued} running job(s) requeued to resume from their last checkpoint"
        return f"restored into {self.database}; {jobs}\n{restore_advice(self.revision)}"


def backup_database(url: str, path: Path) -> BackupSummary:
    """Write a consistent copy of the live database at `url` to `path` (replaced atomically when it exists)."""
    path = path.resolve()
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    if _is_sqlite(url):
        _sqlite_copy(_sqlite_file(url), partial)
        _check_sqlite(partial)
    else:
        _run_tool("pg_dump", "--format=custom", f"--file={partial}", url=url)
    os.replace(partial, path)
    return BackupSummary(path=path, size=path.stat().st_size, revision=current_revision(url))


def restore_database(url: str, path: Path, *, force: bool = False) -> RestoreSummary:
    """Load the backup at `path` into the database at `url`, which must hold no rows unless `force`; then requeue
    the jobs that were running when the backup was taken."""
    if not path.is_file():
        raise BackupError(f"no backup at {path}")
    rows = count_rows(url)
    if rows and not force:
        raise BackupError(f"the database at {_safe(url)} is not empty ({rows} rows): pass --force to replace it")
    if _is_sqlite(url):
        _check_sqlite(path)
        _sqlite_copy(path, _sqlite_file(url))
    else:
        clean = ["--clean", "--if-exists"] if _has_tables(url) else []
        _run_tool("pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", *clean, str(path), url=url)
    requeued = requeue_running_jobs(url)
    return RestoreSummary(database=_safe(url), revision=current_revision(url), requeued=requeued)


def restore_advice(revision: str | None) -> str:
    """What to do after restoring a database at `revision`."""
    head = head_revision()
    if revision == head:
        return "the schema is at head: start convlab"
    return f"the schema is at {revision or 'nothing'}, this release at {head}: run `convlab db upgrade` (serve does)"


def requeue_running_jobs(url: str) -> int:
    """Return the restored database's running jobs to the queue (their workers are gone); how many."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            running = list(session.scalars(select(Job).where(Job.status == JobStatus.running)))
            for job in running:
                job.status, job.lease_owner, job.lease_expires_at = JobStatus.queued, None, None
                add_status_event(session, job, reason=RESTORED_REASON)
            session.commit()
            return len(running)
    finally:
        engine.dispose()


def count_rows(url: str) -> int:
    """How many rows the database's tables hold, Alembic's bookkeeping aside (0 for a new or migrated one)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = [t for t in inspect(connection).get_table_names() if t != "alembic_version"]
            return sum(connection.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables)
    finally:
        engine.dispose()


def _has_tables(url: str) -> bool:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return bool(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore into")
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy every page of `source` into `target` under one read transaction (SQLite's online backup API)."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source, timeout=30) as reader, sqlite3.connect(target, timeout=30) as writer:
        reader.backup(writer)
    reader.close()
    writer.close()


def _check_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
    connection.close()
    if verdict != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {verdict}")


def _run_tool(tool: str, *args: str, url: str) -> None:
    """Run a PostgreSQL client tool on the database at `url` (its password passed in the environment)."""
    if shutil.which(tool) is None:
        raise BackupError(
            f"{tool} not found on PATH: install PostgreSQL's client tools (postgresql-client, of the server's "
            f"major version or newer) to back up or restore a PostgreSQL database"
        )
    parsed = make_url(url)
    env = {**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})}
    command = [tool, "--dbname", _libpq_dsn(parsed), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TOOL_SECONDS)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _libpq_dsn(parsed: URL) -> str:
    """The URL as libpq reads it: no SQLAlchemy driver name, no password (that goes in PGPASSWORD)."""
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False)


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
