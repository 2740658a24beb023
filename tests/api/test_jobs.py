"""POST/GET/DELETE /jobs and cancel: the contract, validation and its error answers."""

import pytest

from tests.api.conftest import SMALL_JOB


def test_create_job_answers_201_with_book_defaults_filled(client):
    response = client.post("/jobs", json={"architecture": "resnet18", "epochs": 1})
    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "queued" and job["id"] >= 1
    assert response.headers["location"] == f"/jobs/{job['id']}"
    spec = job["spec"]
    assert spec["optimizer"]["name"] == "sgd" and spec["optimizer"]["lr"] == 0.05  # the book's ResNet lr
    assert spec["batch_size"] == 256 and spec["resize"] == 96 and spec["dataset"] == "fashion_mnist"


def test_create_job_keeps_the_given_fields(client):
    job = client.post("/jobs", json={**SMALL_JOB, "priority": 7, "optimizer": {"name": "adam", "lr": 0.01}}).json()
    assert job["priority"] == 7
    assert job["spec"]["optimizer"]["name"] == "adam" and job["spec"]["optimizer"]["lr"] == 0.01
    assert job["spec"]["train_subset"] == SMALL_JOB["train_subset"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"architecture": "vgg"}, "architecture"),
        ({"architecture": "bn_lenet", "dataset": "imagenet"}, "dataset"),
        ({"architecture": "bn_lenet", "optimizer": {"name": "lbfgs"}}, "optimizer.name"),
        ({"architecture": "bn_lenet", "optimizer": {"name": "sgd", "lr": 0}}, "optimizer.lr"),
        ({"architecture": "bn_lenet", "optimizer": {"lr": -1}}, "optimizer.lr"),
        ({"architecture": "bn_lenet", "epochs": 0}, "epochs"),
        ({"architecture": "bn_lenet", "batch_size": 0}, "batch_size"),
        ({"architecture": "bn_lenet_concise", "batch_size": 1}, "batch_size"),
        ({"architecture": "bn_lenet", "learning_rate": 0.1}, "learning_rate"),
        ({"epochs": 1}, "architecture"),
        ({"architecture": "bn_lenet", "epochs": "many"}, "epochs"),
    ],
)
def test_create_job_rejects_invalid_spec_naming_the_field(client, body, field):
    response = client.post("/jobs", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.startswith(f"{field}:"), detail


def test_create_job_rejects_epochs_above_the_configured_limit(client, settings):
    response = client.post("/jobs", json={"architecture": "bn_lenet", "epochs": settings.jobs.max_epochs + 1})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("epochs:") and "max_epochs" in response.json()["detail"]


def test_create_job_rejects_batch_size_above_the_configured_limit(client, settings):
    response = client.post("/jobs", json={"architecture": "bn_lenet", "batch_size": settings.jobs.max_batch_size + 1})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("batch_size:")


def test_create_job_rejects_an_input_size_the_architecture_cannot_take(client):
    response = client.post("/jobs", json={"architecture": "densenet", "resize": 28})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("resize:")


def test_create_job_rejects_a_dataset_whose_files_are_missing(client):
    response = client.post("/jobs", json={"architecture": "bn_lenet", "dataset": "cifar10"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("dataset:") and "CONVLAB_DATA_DIR" in detail


@pytest.mark.parametrize("body", [b'{"architecture": ', b"not json", b'{"architecture": "bn_lenet",}'])
def test_create_job_answers_400_for_malformed_json(client, body):
    response = client.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["detail"]


def test_list_jobs_is_newest_first_paginated_and_filtered(client):
    ids = [client.post("/jobs", json={**SMALL_JOB, "seed": s}).json()["id"] for s in range(3)]
    client.post(f"/jobs/{ids[0]}/cancel")
    page = client.get("/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["items"]] == [ids[2], ids[1]] and page["total"] == 3
    second = client.get("/jobs", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in second["items"]] == [ids[0]]
    cancelled = client.get("/jobs", params={"status": "cancelled"}).json()
    assert [j["id"] for j in cancelled["items"]] == [ids[0]] and cancelled["total"] == 1


@pytest.mark.parametrize("params", [{"status": "sleeping"}, {"limit": 0}, {"limit": 10_000}, {"offset": -1}])
def test_list_jobs_rejects_bad_query_parameters(client, params):
    response = client.get("/jobs", params=params)
    assert response.status_code == 422 and response.json()["detail"]


def test_get_job_returns_it_and_404s_for_unknown_ids(client):
    job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
    assert client.get(f"/jobs/{job_id}").json()["spec"]["architecture"] == "bn_lenet"
    missing = client.get("/jobs/999")
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    assert client.get("/jobs/zero").status_code == 422


def test_cancel_queued_job_cancels_it(client):
    job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_cancel_finished_job_answers_409(client):
    job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
    client.post(f"/jobs/{job_id}/cancel")
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 409 and "cancelled" in response.json()["detail"]


def test_delete_refuses_unfinished_job_and_removes_finished_one(client):
    job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
    refused = client.delete(f"/jobs/{job_id}")
    assert refused.status_code == 409 and refused.json()["detail"]
    client.post(f"/jobs/{job_id}/cancel")
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.get(f"/jobs/{job_id}/history").status_code == 404
    assert client.delete(f"/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize(
    "request_line",
    [
        ("GET", "/jobs/99999999999999999999"),
        ("POST", "/jobs/99999999999999999999/cancel"),
        ("GET", "/jobs/99999999999999999999/events"),
        ("GET", "/jobs/1/checkpoints/99999999999999999999"),
        ("GET", "/jobs?offset=99999999999999999999"),
    ],
)
def test_numbers_too_large_for_the_database_answer_422(client, request_line):
    method, url = request_line
    response = client.request(method, url)
    assert response.status_code == 422 and "less than or equal" in response.json()["detail"]
