"""Upgrades that keep data: every fixture database written at an older revision (tests/db/fixtures), on SQLite and
PostgreSQL, goes to head with `convlab db upgrade` with every row intact and still usable; a downgrade by one
revision and back keeps every row of the tables that downgrade does not drop."""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from service.jobspec.status import JobStatus
from service.main import create_app
from service.storage.db import downgrade_database, head_revision, make_engine, upgrade_database
from service.worker import run_worker
from tests.api.auth_helpers import bearer, required_settings
from tests.db.databases import BACKENDS
from tests.db.fixtures.load import fixture_files, manifest, old_database
from tests.safety.commands import convlab_db

FIXTURES = fixture_files()
PIXELS = {"pixels": [[[0.5] * 28] * 28]}


@pytest.fixture(params=FIXTURES, ids=[f.stem for f in FIXTURES])
def fixture(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)


@pytest.fixture(params=BACKENDS)
def old_url(request: pytest.FixtureRequest, fixture: Path, tmp_path: Path) -> Iterator[str]:
    """A private database at the fixture's revision, holding its rows."""
    with old_database(request.param, fixture, tmp_path) as url:
        yield url


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but Alembic's, in primary-key order."""
    engine = make_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            return {
                t.name: [tuple(row) for row in connection.execute(select(t).order_by(*t.primary_key.columns))]
                for t in tables.sorted_tables
                if t.name != "alembic_version"
            }
    finally:
        engine.dispose()


def test_fixtures_exist_for_the_oldest_kept_revision() -> None:
    assert FIXTURES, "tests/db/fixtures holds no rev*.db: see its README.md"
    for fixture in FIXTURES:
        assert manifest(fixture)["revision"] == fixture.stem.removeprefix("rev")


def test_upgrade_keeps_every_row(old_url: str, tmp_path: Path) -> None:
    before = table_rows(old_url)
    upgraded = convlab_db(old_url, tmp_path, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.split()[-1] == head_revision()
    after = table_rows(old_url)
    for table, rows in before.items():
        assert len(after[table]) == len(rows), f"{table}: {len(rows)} rows before the upgrade, {len(after[table])}"
    assert sum(map(len, before.values())) > 0


def test_upgraded_rows_still_work(old_url: str, fixture: Path, tmp_path: Path, data_dir: Path) -> None:
    expected = manifest(fixture)
    upgrade_database(old_url)
    settings = required_settings(tmp_path, data_dir).model_copy(update={"database_url": old_url})
    app = create_app(settings)
    auth = bearer(expected["token_secret"])
    with TestClient(app) as client:
        assert client.get("/jobs").status_code == 401
        listed = client.get("/jobs", headers=auth).json()["items"]
        assert {job["status"]: job["id"] for job in listed if job["id"] in expected["jobs"].values()} == expected[
            "jobs"
        ]
        trained = expected["jobs"]["succeeded"]
        predicted = client.post(f"/jobs/{trained}/predict", json=PIXELS, headers=auth).json()["predictions"][0]
        assert predicted["class_index"] == expected["prediction"]["class_index"]
        assert predicted["probability"] == pytest.approx(expected["prediction"]["probability"], abs=1e-6)
        sweep = client.get(f"/sweeps/{expected['sweep']}", headers=auth).json()
        assert sweep["status"] == "succeeded" and len(sweep["trials"]) == 2
        export = client.get(f"/jobs/{trained}/export", params={"format": "onnx"}, headers=auth)
        assert export.status_code == 200
        assert hashlib.sha256(export.content).hexdigest() == expected["export_sha256"]
    app.state.engine.dispose()
    run_worker(settings, burst=True)  # the queued job, and the running one whose worker vanished, train to the end
    with TestClient(create_app(settings)) as client:
        for status in (JobStatus.queued, JobStatus.running):
            job_id = expected["jobs"][status.value]
            assert client.get(f"/jobs/{job_id}", headers=auth).json()["status"] == "succeeded"


def test_downgrade_by_one_and_back_keeps_the_rows_of_tables_it_keeps(old_url: str) -> None:
    upgrade_database(old_url)
    at_head = table_rows(old_url)
    downgrade_database(old_url, "-1")
    kept = set(table_rows(old_url))
    upgrade_database(old_url)
    again = table_rows(old_url)
    assert set(again) == set(at_head)
    for table in at_head:
        assert again[table] == (at_head[table] if table in kept else []), table
