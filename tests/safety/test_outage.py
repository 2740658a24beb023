"""An outage reads as an outage: while the database cannot be reached, every route that needs it answers 503 with
Retry-After and a detail naming the database (never a 500), /health/ready says the same, and the routes that do
not need it keep answering. On SQLite (a database file that cannot be opened) and on a PostgreSQL cluster of the
test's own, stopped mid-test and started again."""

import re
from pathlib import Path

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service.main import create_app
from service.storage.db import upgrade_database
from tests.api.conftest import SMALL_JOB, make_settings
from tests.safety.cluster import own_cluster

# Routes that must answer without the database.
WITHOUT_DATABASE = {"/health/live", "/version", "/architectures", "/architectures/{name}"}
# Routes that need it, with a body that is valid apart from the database: each must answer 503.
NEEDS_DATABASE = [
    ("GET", "/jobs"),
    ("GET", "/jobs/1"),
    ("GET", "/jobs/1/history"),
    ("GET", "/jobs/1/checkpoints"),
    ("GET", "/jobs/1/events"),
    ("POST", "/jobs"),
    ("POST", "/jobs/1/cancel"),
    ("DELETE", "/jobs/1"),
    ("POST", "/jobs/1/predict"),
    ("GET", "/sweeps"),
    ("GET", "/tokens"),
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/ui/jobs/1"),
]
BODIES = {("POST", "/jobs"): SMALL_JOB, ("POST", "/jobs/1/predict"): {"pixels": [[[0.0] * 28] * 28]}}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "bn_lenet" if m.group(1) == "name" else "1", path)


def assert_reads_as_outage(client: TestClient) -> None:
    """Every GET route answers below 500 or a database 503; the routes that need the database answer 503."""
    for method, path in NEEDS_DATABASE:
        response = client.request(method, path, json=BODIES.get((method, path)))
        assert response.status_code == 503, f"{method} {path} -> {response.status_code} {response.text[:200]}"
        assert int(response.headers["Retry-After"]) > 0, f"{method} {path} has no Retry-After"
        body = response.json()
        assert "database" in str(body.get("detail") or body.get("reason") or body.get("database_error")), body
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and "GET" in route.methods and "{" not in route.path.replace("{name}", ""):
            response = client.get(_concrete(route.path))
            assert response.status_code != 500, f"GET {route.path} -> 500 while the database is down"
            if response.status_code == 503:
                assert "Retry-After" in response.headers, route.path
    for path in WITHOUT_DATABASE:
        assert client.get(_concrete(path)).status_code == 200, path


def test_outage_on_sqlite_reads_as_503_and_recovers(tmp_path: Path, data_dir: Path) -> None:
    database = tmp_path / "convlab.db"
    database.mkdir()  # a path that cannot be opened as a database: the volume holding it is gone
    url = f"sqlite:///{database}"
    settings = make_settings(tmp_path, data_dir, database_url=url, migrate_on_start=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert_reads_as_outage(client)
        database.rmdir()
        upgrade_database(url)  # the volume is back
        assert client.get("/health/ready").status_code == 200
        assert client.post("/jobs", json=SMALL_JOB).status_code == 201
        assert client.get("/jobs").json()["total"] == 1


def test_outage_on_postgres_reads_as_503_and_recovers(tmp_path: Path, data_dir: Path) -> None:
    with own_cluster() as cluster:
        settings = make_settings(tmp_path, data_dir, database_url=cluster.url)
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.post("/jobs", json=SMALL_JOB).status_code == 201
            assert client.get("/jobs/1").status_code == 200  # a pooled connection exists when the server goes
            cluster.stop()
            assert_reads_as_outage(client)
            cluster.start()
            assert client.get("/health/ready").status_code == 200
            assert client.get("/jobs").json()["total"] == 1
            assert client.post("/jobs", json=SMALL_JOB).status_code == 201
        app.state.engine.dispose()
