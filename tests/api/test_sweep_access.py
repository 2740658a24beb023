"""Sweeps and clones under access control: trials and clones belong to the token that asked for them."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.access import Scope
from service.main import create_app
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import SMALL_JOB, make_client
from tests.api.test_sweeps import TINY

SPACE = {"optimizer.lr": {"values": [0.05, 0.1]}}


@pytest.fixture
def app(tmp_path: Path, data_dir: Path) -> FastAPI:
    return create_app(required_settings(tmp_path, data_dir))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with make_client(app) as client:
        yield client


def test_a_sweeps_trials_belong_to_its_owner_who_alone_may_change_it(client, app):
    alice = bearer(issue_token(app, "alice", Scope.jobs_read, Scope.jobs_write))
    bob = bearer(issue_token(app, "bob", Scope.jobs_read, Scope.jobs_write))
    admin = bearer(issue_token(app, "root", Scope.admin))
    assert client.post("/sweeps", json={"base": TINY, "space": SPACE, "sampler": "grid"}).status_code == 401
    sweep = client.post("/sweeps", json={"base": TINY, "space": SPACE, "sampler": "grid"}, headers=alice).json()
    owners = {client.get(f"/jobs/{t['job_id']}", headers=bob).json()["owner"] for t in sweep["trials"]}
    assert owners == {"alice"}
    refused = client.post(f"/sweeps/{sweep['id']}/cancel", headers=bob)
    assert refused.status_code == 403 and "another token" in refused.json()["detail"]
    assert client.patch(f"/sweeps/{sweep['id']}", json={"max_trials": 3}, headers=bob).status_code == 403
    assert client.post(f"/sweeps/{sweep['id']}/cancel", headers=admin).status_code == 200


def test_a_clone_belongs_to_the_caller_and_reading_needs_jobs_read(client, app):
    alice = bearer(issue_token(app, "alice", Scope.jobs_read, Scope.jobs_write))
    writer = bearer(issue_token(app, "writer", Scope.jobs_write))
    job = client.post("/jobs", json=SMALL_JOB, headers=alice).json()
    clone = client.post(f"/jobs/{job['id']}/clone", json={}, headers=writer)
    assert clone.status_code == 201 and clone.json()["owner"] == "writer"
    assert client.get(f"/compare?jobs={job['id']},{clone.json()['id']}", headers=writer).status_code == 403
    assert client.get(f"/compare?jobs={job['id']},{clone.json()['id']}", headers=alice).status_code == 200
