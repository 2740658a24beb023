"""GET /metrics in Prometheus' text format: names, types, units and bounded labels; database-derived metrics
equal to the database's own counts after a separate worker process ran the jobs; health probes; request ids."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from service.access import Scope
from service.config import AccessSettings, AuthMode
from service.jobspec.status import JobStatus
from service.main import create_app
from service.storage.db import downgrade_database
from service.storage.orm import Job
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import make_client, make_settings

TINY_JOB = {"architecture": "lenet", "dataset": "synthetic", "epochs": 1, "batch_size": 64, "train_subset": 256}
EXPECTED = {
    "convlab_http_requests": ("counter", {"route", "method", "status"}),
    "convlab_http_request_duration_seconds": ("histogram", {"route", "method"}),
    "convlab_predict_duration_seconds": ("histogram", set()),
    "convlab_predict_queue_wait_seconds": ("histogram", set()),
    "convlab_predict_batch_size_images": ("histogram", set()),
    "convlab_model_cache_hits": ("counter", set()),
    "convlab_model_cache_misses": ("counter", set()),
    "convlab_model_cache_evictions": ("counter", set()),
    "convlab_jobs": ("gauge", {"status"}),
    "convlab_queue_depth": ("gauge", set()),
    "convlab_job_duration_seconds": ("histogram", {"architecture"}),
    "convlab_lease_takeovers": ("counter", set()),
    "convlab_workers_alive": ("gauge", set()),
    "convlab_database_up": ("gauge", set()),
    "convlab_build_info": ("gauge", {"version", "python", "torch"}),
}


def scrape(client: TestClient, **headers: str) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def value(families: dict, name: str, sample: str | None = None, **labels: str) -> float:
    for s in families[name].samples:
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {sample or name} with {labels}")


def test_every_metric_has_its_type_unit_and_label_set(trained):
    trained.post("/jobs/1/predict", json={"pixels": [[[0] * 28] * 28]})
    families = scrape(trained)
    for name, (kind, labels) in EXPECTED.items():
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} <= labels, (name, sample.labels)
        if kind == "counter":
            assert any(s.name == f"{name}_total" for s in families[name].samples), name
    for name, family in families.items():
        if family.type == "histogram" and ("duration" in name or "wait" in name):
            assert name.endswith("_seconds"), name


def test_routes_are_labelled_by_template_never_by_raw_path(client):
    client.get("/jobs/424242")
    client.get("/no/such/path/77")
    text = client.get("/metrics").text
    assert "424242" not in text and "/no/such" not in text
    families = scrape(client)
    assert value(families, "convlab_http_requests", route="/jobs/{job_id}", method="GET", status="404") == 1
    assert value(families, "convlab_http_requests", route="unmatched", method="GET", status="404") == 1


def test_predict_cache_and_batch_metrics_count_real_predictions(trained):
    before = scrape(trained)
    for _ in range(3):
        assert trained.post("/jobs/1/predict", json={"pixels": [[[0] * 28] * 28] * 2}).status_code == 200
    after = scrape(trained)

    def grew(name: str, sample: str) -> float:
        return value(after, name, sample) - value(before, name, sample)

    assert grew("convlab_predict_duration_seconds", "convlab_predict_duration_seconds_count") == 3
    assert grew("convlab_predict_batch_size_images", "convlab_predict_batch_size_images_sum") == 6
    assert grew("convlab_model_cache_hits", "convlab_model_cache_hits_total") >= 2


def test_job_metrics_equal_the_database_after_a_separate_worker_ran(tmp_path: Path, data_dir: Path):
    settings = make_settings(tmp_path, data_dir)
    app = create_app(settings)
    with make_client(app) as client:
        for _ in range(2):
            assert client.post("/jobs", json=TINY_JOB).status_code == 201
        third = client.post("/jobs", json=TINY_JOB).json()["id"]
        client.post(f"/jobs/{third}/cancel")
        client.post("/jobs", json=TINY_JOB)
        env = {**os.environ, "CONVLAB_DATABASE_URL": settings.database_url, "CONVLAB_DATA_DIR": str(data_dir)}
        command = [sys.executable, "-m", "service.cli", "worker", "--burst", "--no-migrate"]
        subprocess.run(command, env={**env, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True, timeout=300)
        client.post("/jobs", json=TINY_JOB)  # queued after the worker left
        families = scrape(client)
        with app.state.session_factory() as session:
            counts = {status: n for status, n in session.execute(select(Job.status, func.count()).group_by(Job.status))}
    for status in JobStatus:
        assert value(families, "convlab_jobs", status=status.value) == counts.get(status, 0), status
    assert counts[JobStatus.succeeded] == 3 and counts[JobStatus.queued] == 1
    assert value(families, "convlab_queue_depth") == 1
    count = "convlab_job_duration_seconds_count"
    assert value(families, "convlab_job_duration_seconds", count, architecture="lenet") == 3
    assert value(families, "convlab_workers_alive") == 1  # the worker's heartbeat is recent
    assert value(families, "convlab_database_up") == 1


def test_metrics_need_the_metrics_or_admin_scope_unless_public(tmp_path, data_dir):
    with make_client(create_app(required_settings(tmp_path, data_dir))) as client:
        assert client.get("/metrics").status_code == 401
        app = client.app
        assert client.get("/metrics", headers=bearer(issue_token(app, "ops", Scope.jobs_read))).status_code == 403
        assert client.get("/metrics", headers=bearer(issue_token(app, "prom", Scope.metrics))).status_code == 200
        assert client.get("/metrics", headers=bearer(issue_token(app, "root", Scope.admin))).status_code == 200
    public = required_settings(tmp_path / "public", data_dir, metrics_public=True)
    with make_client(create_app(public)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/jobs").status_code == 401


def test_request_ids_are_echoed_or_made(client):
    assert client.get("/health", headers={"X-Request-ID": "trace-42"}).headers["X-Request-ID"] == "trace-42"
    made = client.get("/health").headers["X-Request-ID"]
    assert len(made) == 32 and int(made, 16) >= 0
    insane = client.get("/health", headers={"X-Request-ID": "a b\\x00" * 3}).headers["X-Request-ID"]
    assert insane != "a b\\x00" * 3 and len(insane) == 32


def test_readiness_needs_a_migrated_database_and_liveness_does_not(tmp_path, data_dir):
    settings = make_settings(tmp_path, data_dir, migrate_on_start=True)
    with make_client(create_app(settings)) as client:
        assert client.get("/health/ready").json() == {"status": "ok", "reason": None}
    downgrade_database(settings.database_url, "0001")
    with TestClient(create_app(settings.model_copy(update={"migrate_on_start": False}))) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and "0001" in ready.json()["reason"]


@pytest.mark.postgres
def test_api_sessions_on_postgresql_have_statement_and_lock_timeouts(tmp_path, data_dir):
    from tests.db.databases import fresh_postgres_database, postgres_server_url

    with fresh_postgres_database(postgres_server_url()) as url:
        settings = make_settings(tmp_path, data_dir, database_url=url, access=AccessSettings(auth=AuthMode.off))
        app = create_app(settings)
        with make_client(app), app.state.session_factory() as session:
            assert session.scalar(select(func.current_setting("statement_timeout"))) == "30s"
            assert session.scalar(select(func.current_setting("lock_timeout"))) == "10s"
        app.state.engine.dispose()
