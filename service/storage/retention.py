"""Bounding the database's growth: which checkpoints a job keeps, pruning finished jobs to that, giving deleted rows'
space back (`convlab db vacuum`: an explicit VACUUM, not SQLite's incremental auto-vacuum, which needs the database
rebuilt first), and where the bytes are (`convlab db stats`)."""

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, func, inspect, make_url, select, text
from sqlalchemy.orm import Session

from service.jobspec.status import JobStatus
from service.storage.db import begin_write, make_engine, make_session_factory
from service.storage.jobs import best_checkpoint_id, list_checkpoints
from service.storage.orm import Checkpoint, Job, LossPoint, ModelExport

FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


def referenced_checkpoint_ids(session: Session, ids: Iterable[int]) -> set[int]:
    """Those of `ids` that something still points at (an ONNX export made from it)."""
    wanted = list(ids)
    if not wanted:
        return set()
    query = select(ModelExport.checkpoint_id).where(ModelExport.checkpoint_id.in_(wanted))
    return set(session.scalars(query))


def prunable(session: Session, job: Job, checkpoints: Sequence[Checkpoint], *, keep: int) -> list[Checkpoint]:
    """Of `job`'s checkpoints (by step), those beyond the last `keep`: never the best, never a referenced one."""
    kept = {c.id for c in checkpoints[-keep:]} | {best_checkpoint_id(list(checkpoints), metric=job.best_metric)}
    candidates = [c for c in checkpoints if c.id not in kept]
    referenced = referenced_checkpoint_ids(session, (c.id for c in candidates))
    return [c for c in candidates if c.id not in referenced]


def job_keep(job: Job, default_keep: int) -> int:
    """How many checkpoints a job keeps besides its best: its spec's, or the setting for jobs older than the field."""
    return job.read_spec().keep_checkpoints or default_keep


@dataclass(frozen=True)
class PruneReport:
    """What pruning finished jobs removed (or would have, on a dry run)."""

    jobs: int
    checkpoints: int
    bytes: int
    dry_run: bool

    def describe(self) -> str:
        """One line for the operator."""
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} {self.checkpoints} checkpoint(s), {self.bytes:,} bytes, of {self.jobs} finished job(s)"


def prune_finished(session: Session, *, default_keep: int, dry_run: bool = False) -> PruneReport:
    """Delete the checkpoints of finished jobs beyond each job's keep_checkpoints (flushes, does not commit)."""
    jobs, doomed = 0, []
    for job in session.scalars(select(Job).where(Job.status.in_(FINISHED)).order_by(Job.id)):
        extra = prunable(session, job, list_checkpoints(session, job.id), keep=job_keep(job, default_keep))
        jobs += bool(extra)
        doomed.extend(extra)
    if doomed and not dry_run:
        session.execute(delete(Checkpoint).where(Checkpoint.id.in_([c.id for c in doomed])))
        session.flush()
    return PruneReport(jobs=jobs, checkpoints=len(doomed), bytes=sum(c.size for c in doomed), dry_run=dry_run)


def prune_finished_jobs(url: str, *, default_keep: int, dry_run: bool = False) -> PruneReport:
    """`prune_finished` on the database at `url`, committed."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            if not dry_run:
                begin_write(session)  # it reads, then deletes, while the workers of a live deployment write
            report = prune_finished(session, default_keep=default_keep, dry_run=dry_run)
            session.commit()
            return report
    finally:
        engine.dispose()


@dataclass(frozen=True)
class VacuumReport:
    """The database's size before and after a vacuum, in bytes."""

    before: int
    after: int

    def describe(self) -> str:
        """One line for the operator."""
        return f"vacuumed: {self.before:,} -> {self.after:,} bytes ({self.before - self.after:,} given back)"


def vacuum_database(url: str, *, full: bool = False) -> VacuumReport:
    """Give deleted rows' space back: SQLite VACUUM (rewrites the file: needs that much free disk, and the write
    lock while it runs), PostgreSQL VACUUM ANALYZE (space reused, not returned) or, with `full`, VACUUM FULL."""
    if make_url(url).get_backend_name() == "sqlite":
        path = Path(str(make_url(url).database))
        before = _sqlite_bytes(path)
        with sqlite3.connect(path, timeout=30, isolation_level=None) as lite:
            lite.execute("VACUUM")
            lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        lite.close()
        return VacuumReport(before=before, after=_sqlite_bytes(path))
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            size = text("SELECT pg_database_size(current_database())")
            start = int(connection.execute(size).scalar_one())
            connection.execute(text("VACUUM (FULL, ANALYZE)" if full else "VACUUM (ANALYZE)"))
            return VacuumReport(before=start, after=int(connection.execute(size).scalar_one()))
    finally:
        engine.dispose()


def _sqlite_bytes(path: Path) -> int:
    files = (path, path.with_name(path.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists())


@dataclass(frozen=True)
class JobSize:
    """One job's share of the database."""

    job_id: int
    status: str
    checkpoints: int
    checkpoint_bytes: int
    export_bytes: int
    loss_points: int


@dataclass(frozen=True)
class DatabaseStats:
    """Bytes and rows by table, the whole database's bytes, and the largest jobs by stored bytes."""

    total_bytes: int
    tables: dict[str, tuple[int, int]]  # table -> (bytes with its indexes, rows)
    largest_jobs: list[JobSize]

    def describe(self) -> str:
        """Two tables for the operator."""
        lines = [f"database: {self.total_bytes:,} bytes", f"{'table':<18}{'bytes':>16}{'rows':>12}"]
        ordered = sorted(self.tables.items(), key=lambda item: -item[1][0])
        lines += [f"{name:<18}{size:>16,}{rows:>12,}" for name, (size, rows) in ordered]
        lines.append(f"{'job':>6} {'status':<10}{'checkpoints':>12}{'ckpt bytes':>16}{'export bytes':>14}{'steps':>9}")
        lines += [
            f"{j.job_id:>6} {j.status:<10}{j.checkpoints:>12}{j.checkpoint_bytes:>16,}{j.export_bytes:>14,}"
            f"{j.loss_points:>9,}"
            for j in self.largest_jobs
        ]
        return "\n".join(lines)


def database_stats(url: str, *, top: int = 10) -> DatabaseStats:
    """Sizes by table (SQLite's dbstat, PostgreSQL's pg_total_relation_size) and the `top` largest jobs."""
    engine = make_engine(url)
    try:
        sizes, total = _table_bytes(engine)
        with make_session_factory(engine)() as session:
            names = [t for t in inspect(engine).get_table_names()]
            rows = {t: session.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in names}
            largest = largest_jobs(session, top=top)
        tables = {name: (sizes.get(name, 0), rows[name]) for name in names}
        return DatabaseStats(total_bytes=total, tables=tables, largest_jobs=largest)
    finally:
        engine.dispose()


def _table_bytes(engine: Engine) -> tuple[dict[str, int], int]:
    sizes: dict[str, int]
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            query = "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
            sizes = {name: size for name, size in connection.execute(text(query))}
            page = connection.execute(text("PRAGMA page_size")).scalar_one()
            total = page * connection.execute(text("PRAGMA page_count")).scalar_one()
        else:
            query = "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"
            sizes = {name: size for name, size in connection.execute(text(query))}
            total = connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return {str(k): int(v) for k, v in sizes.items()}, int(total)


def largest_jobs(session: Session, *, top: int) -> list[JobSize]:
    """The `top` jobs holding the most checkpoint and export bytes, largest first."""
    ckpt = (
        select(Checkpoint.job_id, func.count().label("n"), func.sum(Checkpoint.size).label("bytes"))
        .group_by(Checkpoint.job_id)
        .subquery()
    )
    exports = (
        select(Checkpoint.job_id, func.sum(ModelExport.size).label("bytes"))
        .join(ModelExport, ModelExport.checkpoint_id == Checkpoint.id)
        .group_by(Checkpoint.job_id)
        .subquery()
    )
    points = select(LossPoint.job_id, func.count().label("n")).group_by(LossPoint.job_id).subquery()
    stored = func.coalesce(ckpt.c.bytes, 0) + func.coalesce(exports.c.bytes, 0)
    query = (
        select(Job.id, Job.status, ckpt.c.n, ckpt.c.bytes, exports.c.bytes, points.c.n)
        .outerjoin(ckpt, ckpt.c.job_id == Job.id)
        .outerjoin(exports, exports.c.job_id == Job.id)
        .outerjoin(points, points.c.job_id == Job.id)
        .order_by(stored.desc(), Job.id)
        .limit(top)
    )
    return [
        JobSize(job_id, status.value, n or 0, int(size or 0), int(export or 0), steps or 0)
        for job_id, status, n, size, export, steps in session.execute(query)
    ]
