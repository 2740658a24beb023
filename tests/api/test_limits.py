"""Abuse limits over real HTTP: active-job quotas, request rates, lockouts, body sizes, the lab's compute budget."""

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.access import Scope
from service.cli import api_process_environment
from service.config import AccessSettings, AuthMode, Settings
from service.main import create_app
from tests.api.auth_helpers import bearer, issue_token, required_settings, run_together
from tests.api.conftest import SMALL_JOB, make_client, make_settings
from tests.db.databases import BACKENDS, fresh_postgres_database, postgres_server_url

# 8 Newton runs of 20,000 steps on a 16-D function through autograd: tens of seconds of work unbounded.
LONG_LAB_CALL = {
    "function": " + ".join(f"(x{i} - 1)**4 + x{i}**2" for i in range(1, 17)),
    "x0": [3.0] * 16,
    "steps": 20_000,
    "backend": "autograd",
    "optimizers": [{"name": "newton", "lr": 0.5}] * 8,
}
QUICK_LAB_CALL = {"function": "x1**2 + x2**2", "x0": [1, 1], "optimizer": {"name": "gd", "lr": 0.1}}


@pytest.fixture
def app_factory(tmp_path: Path, data_dir: Path) -> Iterator:
    clients: list[TestClient] = []

    def make(**access: object) -> tuple[FastAPI, TestClient]:
        app = create_app(required_settings(tmp_path / str(len(clients)), data_dir, **access))
        client = make_client(app).__enter__()
        clients.append(client)
        return app, client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_active_jobs_are_limited_per_token_with_retry_after(app_factory):
    app, client = app_factory(max_active_jobs=2)
    alice = bearer(issue_token(app, "alice", Scope.jobs_write))
    bob = bearer(issue_token(app, "bob", Scope.jobs_write))
    for _ in range(2):
        assert client.post("/jobs", json=SMALL_JOB, headers=alice).status_code == 201
    refused = client.post("/jobs", json=SMALL_JOB, headers=alice)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1 and "max_active_jobs" in refused.json()["detail"]
    assert client.post("/jobs", json=SMALL_JOB, headers=bob).status_code == 201  # another token's own quota
    client.post("/jobs/1/cancel", headers=alice)
    assert client.post("/jobs", json=SMALL_JOB, headers=alice).status_code == 201  # a finished job frees a place


def test_active_jobs_are_limited_per_address_with_auth_off(tmp_path, data_dir):
    settings = make_settings(tmp_path, data_dir, access=AccessSettings(auth=AuthMode.off, max_active_jobs=1))
    with make_client(create_app(settings)) as client:
        assert client.post("/jobs", json=SMALL_JOB).status_code == 201
        assert client.post("/jobs", json=SMALL_JOB).status_code == 429


def test_lab_requests_are_rate_limited_per_token(app_factory):
    app, client = app_factory(lab_rate=0.5, lab_burst=2)
    lab, other = (bearer(issue_token(app, name, Scope.lab)) for name in ("lab-a", "lab-b"))
    assert [client.get("/functions", headers=lab).status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get("/functions", headers=lab)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "per second" in refused.json()["detail"]
    assert client.get("/functions", headers=other).status_code == 200


def test_predict_requests_are_rate_limited(app_factory):
    app, client = app_factory(predict_rate=0.5, predict_burst=1)
    token = bearer(issue_token(app, "p", Scope.predict))
    body = {"pixels": [[0]]}
    assert client.post("/jobs/7/predict", json=body, headers=token).status_code == 404
    assert client.post("/jobs/7/predict", json=body, headers=token).status_code == 429


def test_a_token_s_own_predict_rate_overrides_the_server_s_and_can_be_changed(app_factory):
    app, client = app_factory(predict_burst=1)  # the server's predict rate: the default, no limit
    admin = bearer(issue_token(app, "admin", Scope.admin))
    made = client.post("/tokens", json={"name": "slow", "scopes": ["predict"], "predict_rate": 0.5}, headers=admin)
    assert made.status_code == 201 and made.json()["predict_rate"] == 0.5, made.text
    slow, free = bearer(made.json()["token"]), bearer(issue_token(app, "free", Scope.predict))
    predict = lambda who: client.post("/jobs/7/predict", json={"pixels": [[0]]}, headers=who).status_code  # noqa: E731
    assert [predict(slow), predict(slow)] == [404, 429]
    assert {predict(free) for _ in range(20)} == {404}
    changed = client.patch("/tokens/slow", json={"predict_rate": 0}, headers=admin)
    assert changed.status_code == 200 and changed.json()["predict_rate"] == 0
    assert {predict(slow) for _ in range(20)} == {404}
    for bad in (-1, False, "5", 1e10):  # a boolean or a string is no rate (JSON false must not become 0)
        assert client.patch("/tokens/slow", json={"predict_rate": bad}, headers=admin).status_code == 422, bad
    assert client.patch("/tokens/nobody", json={"predict_rate": 1}, headers=admin).status_code == 404
    assert [t["predict_rate"] for t in client.get("/tokens", headers=admin).json()] == [None, 0, None]


def test_default_limits_do_not_throttle_one_predict_caller_but_keep_the_lab_limit(tmp_path, data_dir):
    """One application calling predict is one caller: the defaults let it send far past the old burst of 200,
    while the lab's expensive calls keep their per-caller rate."""
    app = create_app(make_settings(tmp_path, data_dir, access=AccessSettings(auth=AuthMode.required)))
    with make_client(app) as client:
        token = bearer(issue_token(app, "app", Scope.predict, Scope.lab))
        predict = lambda: client.post("/jobs/7/predict", json={"pixels": [[0]]}, headers=token)  # noqa: E731
        assert {predict().status_code for _ in range(400)} == {404}
        assert 429 in {client.get("/functions", headers=token).status_code for _ in range(40)}


def test_repeated_failed_authentications_lock_the_address_out(app_factory):
    app, client = app_factory(max_auth_failures=3, auth_lockout_seconds=1.0)
    good = bearer(issue_token(app, "good", Scope.jobs_read))
    for _ in range(3):
        assert client.get("/jobs", headers=bearer("cvl_wrong")).status_code == 401
    locked = client.get("/jobs", headers=good)
    assert locked.status_code == 429 and "failed authentications" in locked.json()["detail"]
    assert int(locked.headers["Retry-After"]) >= 1
    time.sleep(1.1)
    assert client.get("/jobs", headers=good).status_code == 200


def test_json_bodies_over_the_limit_answer_413_before_parsing(app_factory):
    app, client = app_factory(max_body_bytes=10_000)
    token = bearer(issue_token(app, "w", Scope.jobs_write, Scope.predict))
    declared = client.post("/jobs", content=b"{" + b" " * 20_000 + b"}", headers=token)
    assert declared.status_code == 413 and "max_body_bytes" in declared.json()["detail"]
    chunks = (b" " * 4096 for _ in range(10))  # no Content-Length: counted while it streams
    streamed = client.post("/jobs", content=chunks, headers={**token, "content-type": "application/json"})
    assert streamed.status_code == 413 and "max_body_bytes" in streamed.json()["detail"]
    # predict keeps its own, larger limit
    predict = client.post("/jobs/5/predict", content=b" " * 20_000, headers={**token, "content-type": "text/plain"})
    assert predict.status_code != 413


def test_body_limit_applies_before_authentication(app_factory):
    _, client = app_factory(max_body_bytes=1000)
    assert client.post("/tokens", content=b"x" * 5000).status_code == 413


def test_a_long_lab_computation_stops_within_its_budget(app_factory):
    app, client = app_factory(lab_max_seconds=1.0)
    lab = bearer(issue_token(app, "lab", Scope.lab))
    start = time.monotonic()
    response = client.post("/trajectories", json=LONG_LAB_CALL, headers=lab)
    elapsed = time.monotonic() - start
    assert response.status_code == 422
    assert "budget of 1 s" in response.json()["detail"] and "CONVLAB_LAB_MAX_SECONDS" in response.json()["detail"]
    assert elapsed < 1.0 + 1.0


def test_lab_computations_beyond_the_slots_wait_then_get_429(app_factory):
    app, client = app_factory(lab_max_seconds=2.0, lab_concurrency=1, lab_queue_seconds=0.2)
    lab = bearer(issue_token(app, "lab", Scope.lab))
    answers: list[int] = []
    first = threading.Thread(
        target=lambda: answers.append(client.post("/trajectories", json=LONG_LAB_CALL, headers=lab).status_code)
    )
    first.start()
    time.sleep(0.5)  # the first call holds the only slot for its 2 s budget
    second = client.post("/trajectories", json=QUICK_LAB_CALL, headers=lab)
    first.join()
    assert second.status_code == 429 and "slots" in second.json()["detail"]
    assert answers == [422]
    assert client.post("/trajectories", json=QUICK_LAB_CALL, headers=lab).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_submissions_cannot_overrun_the_quota(backend, tmp_path, data_dir):
    with contextlib.ExitStack() as stack:
        url = "" if backend == "sqlite" else stack.enter_context(fresh_postgres_database(postgres_server_url()))
        access = AccessSettings(auth=AuthMode.off, max_active_jobs=3)
        app = create_app(make_settings(tmp_path, data_dir, access=access, database_url=url))
        client = stack.enter_context(make_client(app))
        statuses: list[int] = []
        run_together(lambda _: statuses.append(client.post("/jobs", json=SMALL_JOB).status_code), range(10))
        assert sorted(statuses) == [201] * 3 + [429] * 7
        stack.callback(app.state.engine.dispose)


def test_several_api_processes_share_the_lab_slots_and_cpus_out(tmp_path, data_dir):
    """`serve --api-workers N`: each process gets 1/N of the lab slots and torch threads; the rates stay per
    process (docs/operations.md), and the settings each process then reads take that share."""
    access = AccessSettings(auth=AuthMode.off, lab_concurrency=5)
    settings = make_settings(tmp_path, data_dir, access=access, bind_host="127.0.0.1")
    env = api_process_environment(settings, count=2, metrics_dir=str(tmp_path))
    assert env["CONVLAB_LAB_CONCURRENCY"] == "2" and env["CONVLAB_BIND_HOST"] == "127.0.0.1"
    assert env["CONVLAB_INFERENCE_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert env["CONVLAB_MIGRATE_ON_START"] == "false" and env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        seen = Settings()
    assert seen.access.lab_concurrency == 2 and seen.bind_host == "127.0.0.1" and not seen.migrate_on_start
    many = api_process_environment(settings, count=8, metrics_dir=str(tmp_path))
    assert many["CONVLAB_LAB_CONCURRENCY"] == "1"  # never none
