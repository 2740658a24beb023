"""`convlab db backup` of a live database while a worker trains, and `convlab db restore` into an empty one: the
job that was running resumes from its last checkpoint there and ends with exactly the weights of the run that went
on uninterrupted in the original deployment. SQLite (online backup API) and PostgreSQL (pg_dump/pg_restore)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.storage import jobs
from service.storage.backup import RESTORED_REASON, BackupError, backup_database
from service.storage.db import make_engine, make_session_factory
from service.storage.orm import LossPoint
from tests.db.conftest import Templates
from tests.db.databases import BACKENDS, database_copy, empty_database
from tests.queue.processes import (
    job_state,
    model_tensors,
    start_worker,
    status_events,
    stop,
    submit,
    wait_for,
    wait_for_status,
    worker_env,
)
from tests.safety.commands import convlab_db

STEPS = 6 * 32
# Six epochs of 32 steps: the backup is taken once the first epoch's checkpoint is stored, long before the end.
JOB = JobRequest(
    architecture="bn_lenet",
    dataset="synthetic",
    epochs=6,
    batch_size=64,
    train_subset=2048,
    test_subset=128,
    optimizer={"name": "sgd", "lr": 0.1},
    seed=3,
).resolve()


def _final_weights(factory: sessionmaker[Session], job_id: int) -> dict[str, torch.Tensor]:
    with factory() as session:
        last = jobs.list_checkpoints(session, job_id)[-1]
        data = jobs.read_checkpoint_data(factory, last.id)
    assert data is not None
    return model_tensors(data)


def _checkpoint_steps(factory: sessionmaker[Session], job_id: int) -> list[int]:
    with factory() as session:
        return [c.step for c in jobs.list_checkpoints(session, job_id)]


def _attempts_by_step(factory: sessionmaker[Session], job_id: int) -> dict[int, int]:
    with factory() as session:
        rows = session.execute(select(LossPoint.step, LossPoint.attempt).where(LossPoint.job_id == job_id))
        return {step: attempt for step, attempt in rows}


@pytest.fixture(params=BACKENDS)
def source_and_target(
    request: pytest.FixtureRequest, templates: Templates, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """A migrated database and an empty one, both on the same backend."""
    backend = request.param
    (tmp_path / "target").mkdir()
    with (
        database_copy(backend, templates.get(backend), tmp_path) as source,
        empty_database(backend, tmp_path / "target") as target,
    ):
        yield source, target


def test_backup_of_a_running_job_restores_and_resumes_to_identical_weights(
    source_and_target: tuple[str, str], tmp_path: Path, data_dir: Path
) -> None:
    db_url, empty_db_url = source_and_target
    source_engine = make_engine(db_url)
    session_factory = make_session_factory(source_engine)
    job_id = submit(session_factory, JOB)
    worker = start_worker(worker_env(db_url, tmp_path, data_dir), tmp_path, "--burst")
    try:
        wait_for(lambda: _checkpoint_steps(session_factory, job_id), "the first checkpoint")
        backup = tmp_path / "convlab.backup"
        backup_database(db_url, backup)  # in this process: the CLI's start would outlast the job
        assert job_state(session_factory, job_id).status is JobStatus.running  # the backup was taken mid-run
        wait_for_status(session_factory, job_id, JobStatus.succeeded)
        original = _final_weights(session_factory, job_id)  # of the run that went on uninterrupted
    finally:
        stop(worker)
        source_engine.dispose()
    restored = convlab_db(empty_db_url, tmp_path, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "1 running job(s) requeued" in restored.stdout
    engine = make_engine(empty_db_url)
    try:
        factory = make_session_factory(engine)
        checkpoint_step = max(_checkpoint_steps(factory, job_id))
        assert job_state(factory, job_id).status is JobStatus.queued
        assert start_worker(worker_env(empty_db_url, tmp_path, data_dir), tmp_path, "--burst").wait(600) == 0
        assert job_state(factory, job_id).status is JobStatus.succeeded
        assert RESTORED_REASON in [event["reason"] for event in status_events(factory, job_id)]
        by_step = _attempts_by_step(factory, job_id)
        assert sorted(by_step) == list(range(1, STEPS + 1))  # no step missing, none twice
        assert {by_step[s] for s in by_step if s <= checkpoint_step} == {1}  # kept from the backup
        assert {by_step[s] for s in by_step if s > checkpoint_step} == {2}  # trained again after the restore
        resumed = _final_weights(factory, job_id)
        assert original.keys() == resumed.keys() and all(torch.equal(original[k], resumed[k]) for k in original)
    finally:
        engine.dispose()


def _job_ids(factory: sessionmaker[Session]) -> list[int]:
    with factory() as session:
        return [job.id for job in jobs.list_jobs(session)[0]]


def test_restore_refuses_a_database_with_rows_unless_forced(
    db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    submit(session_factory, JOB)
    backup = tmp_path / "one-job.backup"
    assert convlab_db(db_url, tmp_path, "backup", str(backup)).returncode == 0
    submit(session_factory, JOB)
    refused = convlab_db(db_url, tmp_path, "restore", str(backup))
    assert refused.returncode == 1 and "is not empty" in refused.stderr and "--force" in refused.stderr
    assert _job_ids(session_factory) == [2, 1]
    forced = convlab_db(db_url, tmp_path, "restore", "--force", str(backup))
    assert forced.returncode == 0, forced.stderr
    assert _job_ids(session_factory) == [1]


def test_postgres_backup_without_pg_dump_names_the_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without PostgreSQL's client tools
    with pytest.raises(BackupError, match="pg_dump not found on PATH"):
        backup_database("postgresql+psycopg://convlab@127.0.0.1:1/convlab", tmp_path / "x.backup")
