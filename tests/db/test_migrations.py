"""The Alembic migrations are the schema: they match the ORM, round-trip, and tolerate concurrent starts."""

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.storage.db import Base, current_revision, downgrade_database, head_revision, make_engine, upgrade_database
from service.storage.orm import Job  # noqa: F401  (the tables are registered on Base.metadata)

TABLES = {
    "jobs",
    "job_events",
    "epoch_metrics",
    "loss_points",
    "checkpoints",
    "workers",
    "api_tokens",
    "sweeps",
    "sweep_trials",
    "model_exports",
    "registered_models",
    "model_versions",
    "model_aliases",
    "alias_moves",
    "alembic_version",
}


def _pending_differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_on_empty_database_matches_orm_metadata(empty_db_url: str) -> None:
    upgrade_database(empty_db_url)
    assert _tables(empty_db_url) == TABLES
    assert _pending_differences(empty_db_url) == []


def test_downgrade_then_upgrade_round_trips(empty_db_url: str) -> None:
    upgrade_database(empty_db_url)
    downgrade_database(empty_db_url, "base")
    assert _tables(empty_db_url) <= {"alembic_version"}
    assert current_revision(empty_db_url) is None
    upgrade_database(empty_db_url)
    assert _tables(empty_db_url) == TABLES
    assert _pending_differences(empty_db_url) == []


def _cli_db_upgrade(url: str, state_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CONVLAB_DATABASE_URL": url, "CONVLAB_STATE_DIR": str(state_dir)}
    command = [sys.executable, "-m", "service.cli", "db", "upgrade"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_db_upgrade_from_concurrent_processes_migrates_once(empty_db_url: str, tmp_path: Path) -> None:
    processes = [_cli_db_upgrade(empty_db_url, tmp_path) for _ in range(3)]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert stdout.strip().splitlines()[-1] == head_revision()
    assert sum("Running upgrade  -> 0001" in stderr for _, stderr in outputs) == 1
    assert _tables(empty_db_url) == TABLES
    assert _pending_differences(empty_db_url) == []
