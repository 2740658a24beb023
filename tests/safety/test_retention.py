"""Retention: a per-job keep_checkpoints (the server's setting when left out), `convlab db prune` of finished jobs
(never the best, never a checkpoint an export references), `convlab db vacuum` giving a deleted job's bytes back,
and `convlab db stats`. Real jobs trained by the worker code on each backend."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import QueueSettings, Settings
from service.jobspec.spec import JobRequest
from service.main import create_app
from service.storage import jobs
from service.storage.db import make_engine, make_session_factory
from service.storage.retention import database_stats, vacuum_database
from service.worker import run_worker
from tests.api.conftest import make_settings
from tests.committing import a_worker_committing
from tests.safety.commands import convlab_db

# Four epochs of four steps: a checkpoint at the end of each.
TINY = {"architecture": "bn_lenet", "dataset": "synthetic", "epochs": 4, "batch_size": 32, "train_subset": 128}


def _settings(tmp_path: Path, data_dir: Path, url: str, keep: int) -> Settings:
    queue = QueueSettings(keep_checkpoints=keep, poll_seconds=0.1)
    return make_settings(tmp_path, data_dir, database_url=url, queue=queue, migrate_on_start=False)


def _steps(url: str, job_id: int) -> tuple[list[int], int | None]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            kept = jobs.list_checkpoints(session, job_id)
            return [c.step for c in kept], next((c.step for c in kept if c.id == jobs.best_checkpoint_id(kept)), None)
    finally:
        engine.dispose()


def _submit_old_style(url: str) -> int:
    """A job stored as before keep_checkpoints existed (its spec has none: the setting applies)."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            job = jobs.create_job(session, spec=JobRequest.model_validate(TINY).resolve())
            session.commit()
            return job.id
    finally:
        engine.dispose()


def test_keep_checkpoints_is_the_setting_unless_the_request_sets_it(tmp_path: Path, data_dir: Path) -> None:
    settings = _settings(tmp_path, data_dir, f"sqlite:///{tmp_path / 'c.db'}", keep=2).model_copy(
        update={"migrate_on_start": True}
    )
    with TestClient(create_app(settings)) as client:
        assert client.post("/jobs", json=TINY).json()["spec"]["keep_checkpoints"] == 2
        assert client.post("/jobs", json={**TINY, "keep_checkpoints": 5}).json()["spec"]["keep_checkpoints"] == 5
        refused = client.post("/jobs", json={**TINY, "keep_checkpoints": 0})
        assert refused.status_code == 422 and "keep_checkpoints" in refused.json()["detail"]


def test_a_job_keeps_its_own_number_of_checkpoints_besides_the_best(
    db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    settings = _settings(tmp_path, data_dir, db_url, keep=3)
    with TestClient(create_app(settings)) as client:
        one = client.post("/jobs", json={**TINY, "keep_checkpoints": 1}).json()["id"]
        every = client.post("/jobs", json={**TINY, "keep_checkpoints": 4}).json()["id"]
    run_worker(settings, burst=True)
    steps, best = _steps(db_url, one)
    assert steps[-1] == 16 and set(steps) == {16, best}
    assert _steps(db_url, every)[0] == [4, 8, 12, 16]


def test_prune_keeps_the_last_the_best_and_a_referenced_checkpoint(db_url: str, tmp_path: Path, data_dir: Path) -> None:
    job_id = _submit_old_style(db_url)
    settings = _settings(tmp_path, data_dir, db_url, keep=4)
    run_worker(settings, burst=True)
    with TestClient(create_app(settings)) as client:  # an ONNX export of epoch 1 references that checkpoint
        assert client.get(f"/jobs/{job_id}/export", params={"format": "onnx", "epoch": 1}).status_code == 200
    steps, best = _steps(db_url, job_id)
    assert steps == [4, 8, 12, 16]
    dry = convlab_db(db_url, tmp_path, "prune", "--dry-run")
    assert dry.returncode == 0 and "would delete" in dry.stdout and _steps(db_url, job_id)[0] == steps
    env_keep = {"CONVLAB_KEEP_CHECKPOINTS": "1"}
    with a_worker_committing(db_url) as commits:  # a live deployment's workers write meanwhile
        pruned = convlab_db(db_url, tmp_path, "prune", env=env_keep)
    assert commits[0] > 1
    assert pruned.returncode == 0, pruned.stderr
    assert set(_steps(db_url, job_id)[0]) == {4, 16, best}
    assert f"deleted {4 - len({4, 16, best})} checkpoint(s)" in pruned.stdout


def test_vacuum_gives_a_deleted_jobs_bytes_back(db_url: str, tmp_path: Path, data_dir: Path) -> None:
    settings = _settings(tmp_path, data_dir, db_url, keep=4)
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/jobs", json=TINY).json()["id"]
        run_worker(settings, burst=True)
        stored = database_stats(db_url).largest_jobs[0].checkpoint_bytes
        assert client.delete(f"/jobs/{job_id}").status_code == 204
    vacuumed = vacuum_database(db_url, full=True)
    assert vacuumed.before - vacuumed.after >= 0.9 * stored, (vacuumed, stored)


@pytest.mark.parametrize("top", [1])
def test_stats_lists_sizes_by_table_and_the_largest_jobs(db_url: str, tmp_path: Path, data_dir: Path, top: int) -> None:
    settings = _settings(tmp_path, data_dir, db_url, keep=4)
    with TestClient(create_app(settings)) as client:
        small = client.post("/jobs", json={**TINY, "epochs": 1}).json()["id"]
        large = client.post("/jobs", json=TINY).json()["id"]
    run_worker(settings, burst=True)
    stats = database_stats(db_url, top=top)
    assert [j.job_id for j in stats.largest_jobs] == [large] and small != large
    assert stats.largest_jobs[0].checkpoints == 4 and stats.largest_jobs[0].loss_points > 0
    size, rows = stats.tables["checkpoints"]
    assert rows == 5 and size >= stats.largest_jobs[0].checkpoint_bytes and stats.total_bytes >= size
    printed = convlab_db(db_url, tmp_path, "stats", "--top", "1")
    assert printed.returncode == 0 and "checkpoints" in printed.stdout and f"{large:>6} succeeded" in printed.stdout
