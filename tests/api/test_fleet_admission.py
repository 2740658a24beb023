"""Submitting distributed and device-bound jobs: impossible requests are a 422 naming the field."""

from fastapi.testclient import TestClient

from service.config import Settings

JOB = {"architecture": "lenet", "dataset": "synthetic", "epochs": 1, "batch_size": 32}


def test_create_job_stores_the_device_and_the_process_count(client: TestClient) -> None:
    response = client.post("/jobs", json={**JOB, "device": "cuda", "distributed": {"processes": 2}})
    assert response.status_code == 201
    spec = response.json()["spec"]
    assert spec["device"] == "cuda" and spec["distributed"] == {"processes": 2}


def test_create_job_rejects_more_processes_than_allowed(client: TestClient, settings: Settings) -> None:
    too_many = settings.jobs.max_processes + 1
    response = client.post("/jobs", json={**JOB, "batch_size": 32 * too_many, "distributed": {"processes": too_many}})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"distributed.processes: {too_many} is above the limit of {settings.jobs.max_processes} (max_processes)"
    )


def test_create_job_rejects_a_global_batch_the_processes_cannot_share(client: TestClient) -> None:
    response = client.post("/jobs", json={**JOB, "batch_size": 30, "distributed": {"processes": 4}})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "distributed.processes: 4 processes cannot share a global batch of 30 evenly; "
        "choose a batch_size divisible by 4"
    )


def test_create_job_rejects_an_unknown_device_and_zero_processes(client: TestClient) -> None:
    assert client.post("/jobs", json={**JOB, "device": "tpu"}).status_code == 422
    response = client.post("/jobs", json={**JOB, "distributed": {"processes": 0}})
    assert response.status_code == 422 and "distributed.processes" in response.json()["detail"]


def test_a_queued_job_with_no_live_worker_says_why(client: TestClient) -> None:
    job = client.post("/jobs", json={**JOB, "device": "cuda"}).json()
    assert client.get(f"/jobs/{job['id']}").json()["waiting_reason"] == "waiting for a cuda worker; no workers alive"
    listed = client.get("/jobs").json()["items"]
    assert [item["waiting_reason"] for item in listed] == ["waiting for a cuda worker; no workers alive"]
