"""The API on PostgreSQL: the same job routes, on a fresh database that the app's lifespan migrates itself."""

import pytest

from service.main import create_app
from tests.api.conftest import SMALL_JOB, make_client, make_settings
from tests.api.test_events import parse_sse
from tests.db.databases import fresh_postgres_database, postgres_server_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_client(tmp_path, data_dir):
    with fresh_postgres_database(postgres_server_url()) as url:
        settings = make_settings(tmp_path, data_dir, database_url=url)
        app = create_app(settings)
        with make_client(app) as client:
            yield client
        app.state.engine.dispose()  # release the connections before the database is dropped


def test_job_lifecycle_on_postgres(pg_client):
    first = pg_client.post("/jobs", json=SMALL_JOB)
    second = pg_client.post("/jobs", json={**SMALL_JOB, "priority": 3})
    assert first.status_code == second.status_code == 201
    page = pg_client.get("/jobs").json()
    assert [j["id"] for j in page["items"]] == [second.json()["id"], first.json()["id"]] and page["total"] == 2
    job_id = first.json()["id"]
    assert pg_client.post(f"/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert pg_client.post(f"/jobs/{job_id}/cancel").status_code == 409
    events = parse_sse(pg_client.get(f"/jobs/{job_id}/events").text)
    assert [e["data"]["status"] for e in events] == ["queued", "cancelled"]
    assert pg_client.delete(f"/jobs/{job_id}").status_code == 204
    assert pg_client.get(f"/jobs/{job_id}").status_code == 404
    assert pg_client.post(f"/jobs/{second.json()['id']}/predict", json={"pixels": [[[0]]]}).status_code == 409


def test_health_on_postgres(pg_client):
    assert pg_client.get("/health").json() == {
        "status": "ok",
        "database": True,
        "database_error": None,
        "workers": [],
        "workers_alive": 0,
    }
