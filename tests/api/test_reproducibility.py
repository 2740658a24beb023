"""Reproducibility: the environment each job records, clones that rerun a job bit for bit on the CPU, and the
comparison of jobs side by side."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load as load_safetensors

from service.config import Settings
from service.main import create_app
from service.worker import run_worker
from tests.api.conftest import make_client, make_settings

JOB: dict[str, Any] = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 2,
    "batch_size": 128,
    "optimizer": {"name": "sgd", "lr": 0.9},
    "train_subset": 1024,
    "test_subset": 256,
    "seed": 3,
}
TIMING = ("seconds", "images_per_sec")


@pytest.fixture(scope="module")
def cloned(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[TestClient]:
    """Job 1 trained on the CPU, job 2 its exact clone, job 3 a clone with another seed: all finished."""
    settings: Settings = make_settings(tmp_path_factory.mktemp("clones"), data_dir, device="cpu")
    with make_client(create_app(settings)) as client:
        assert client.post("/jobs", json=JOB).status_code == 201
        run_worker(settings, burst=True)
        assert client.post("/jobs/1/clone").json()["id"] == 2
        assert client.post("/jobs/1/clone", json={"overrides": {"seed": 4}}).json()["id"] == 3
        run_worker(settings, burst=True)
        assert [client.get(f"/jobs/{i}").json()["status"] for i in (1, 2, 3)] == ["succeeded"] * 3
        yield client


def _history(client: TestClient, job_id: int) -> tuple[list[Any], list[Any]]:
    history = client.get(f"/jobs/{job_id}/history").json()
    epochs = [{k: v for k, v in e.items() if k not in TIMING} for e in history["epochs"]]
    return [(s["step"], s["loss"]) for s in history["steps"]], epochs


def _weights(client: TestClient, job_id: int) -> dict[str, torch.Tensor]:
    data = client.get(f"/jobs/{job_id}/checkpoints/2").content
    return {k: v for k, v in load_safetensors(data).items() if k.startswith(("model.", "optim."))}


def test_cpu_clone_reproduces_the_history_and_weights_bit_for_bit(cloned: TestClient) -> None:
    assert cloned.get("/jobs/2").json()["spec"] == cloned.get("/jobs/1").json()["spec"]
    assert _history(cloned, 2) == _history(cloned, 1)
    original, clone = _weights(cloned, 1), _weights(cloned, 2)
    assert original and original.keys() == clone.keys() and all(torch.equal(original[k], clone[k]) for k in original)


def test_clone_with_an_override_changes_that_field_only(cloned: TestClient) -> None:
    comparison = cloned.get("/compare", params={"jobs": "1,3"}).json()
    assert comparison["differing"] == {"seed": [3, 4]}
    assert _history(cloned, 3)[0] != _history(cloned, 1)[0]


def test_every_job_records_its_environment(cloned: TestClient) -> None:
    environment = cloned.get("/jobs/1/environment").json()
    job = cloned.get("/jobs/1").json()
    assert environment["device"] == "cpu" and environment["determinism"]["bitwise_reproducible"] is True
    assert environment["torch_version"] == torch.__version__ == job["torch_version"]
    assert (
        environment["dataset_checksum"]
        == job["dataset_checksum"]
        == cloned.get("/jobs/2/environment").json()["dataset_checksum"]
    )
    assert {"convlab_version", "cudnn_version", "device_name", "python_version"} <= environment.keys()


def test_compare_aligns_histories_by_step_and_epoch(cloned: TestClient) -> None:
    comparison = cloned.get("/compare", params={"jobs": "1,2"}).json()
    assert comparison["jobs"] == [1, 2] and comparison["differing"] == {}
    assert [row["epoch"] for row in comparison["epochs"]] == [1, 2]
    assert all(a == b for row in comparison["steps"] for a, b in [row["loss"]])
    assert all(a == b for row in comparison["epochs"] for a, b in [row["metrics"]["test_acc"]])


@pytest.mark.parametrize(
    ("jobs", "status", "message"),
    [("1,x", 422, "not a comma-separated list"), ("1,1", 422, "repeats"), ("1,99", 404, "job 99 not found")],
)
def test_compare_refuses_bad_job_lists(cloned: TestClient, jobs: str, status: int, message: str) -> None:
    response = cloned.get("/compare", params={"jobs": jobs})
    assert response.status_code == status and message in response.json()["detail"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optimizer.lrr": 0.1}, "overrides.optimizer.lrr: 'optimizer.lrr' is not a job spec field"),
        ({"optimizer.lr": -1}, "overrides: optimizer.lr: Input should be greater than 0"),
    ],
)
def test_clone_refuses_bad_overrides(cloned: TestClient, overrides: dict[str, Any], message: str) -> None:
    response = cloned.post("/jobs/1/clone", json={"overrides": overrides})
    assert response.status_code == 422 and message in response.json()["detail"]


def test_clone_and_environment_of_unknown_job(cloned: TestClient) -> None:
    assert cloned.post("/jobs/99/clone").status_code == 404
    assert cloned.get("/jobs/99/environment").status_code == 404
