"""Jobs on uploaded datasets, trained for real by the worker: faithful to the built-in data, pinned versions,
predictions and exports that speak the dataset's class names, clones, sweeps, and deletes refused while used."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from service.worker import run_worker
from service.worker.datasets import cache_dir
from tests.api.archives import class_folder_name, fashion_files, image_bytes, zip_bytes
from tests.api.conftest import make_client, make_settings

TRAIN, TEST = 2000, 500
# SGD with a cosine schedule: the settled end of a run, where the order of the examples barely matters (the upload
# holds the same images as the built-in slice, but in its own order, so the batches differ).
JOB = {
    "architecture": "bn_lenet",
    "epochs": 4,
    "batch_size": 64,
    "optimizer": {"name": "sgd", "lr": 0.5},
    "scheduler": {"name": "cosine"},
    "seed": 0,
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Settings:
    return make_settings(tmp_path_factory.mktemp("uploaded-jobs"), data_dir)


@pytest.fixture(scope="module")
def trained(settings: Settings, data_dir: Path) -> Iterator[TestClient]:
    """Job 1 on the upload of 2,000 + 500 real Fashion-MNIST images, job 2 on the built-in same images."""
    archive = zip_bytes(fashion_files(data_dir, train=TRAIN, test=TEST))
    with make_client(create_app(settings)) as client:
        uploaded = client.post("/datasets", params={"name": "fashion", "size": 28}, content=archive)
        assert uploaded.status_code == 201, uploaded.text
        first = client.post("/jobs", json={**JOB, "dataset": "fashion"})
        assert first.status_code == 201, first.text
        builtin = {**JOB, "dataset": "fashion_mnist", "train_subset": TRAIN, "test_subset": TEST}
        assert client.post("/jobs", json=builtin).status_code == 201
        run_worker(settings, burst=True)
        yield client


def test_a_job_names_the_latest_version_and_stores_it_pinned(trained: TestClient):
    job = trained.get("/jobs/1").json()
    assert job["status"] == "succeeded", job
    assert job["spec"]["dataset"] == "fashion@1"


def test_training_on_the_upload_matches_the_built_in_dataset(trained: TestClient):
    uploaded = trained.get("/jobs/1/history").json()["epochs"][-1]["test_acc"]
    builtin = trained.get("/jobs/2/history").json()["epochs"][-1]["test_acc"]
    print(f"test accuracy: upload {uploaded:.3f}, built-in {builtin:.3f}")
    assert builtin > 0.6
    assert abs(uploaded - builtin) <= 0.01, (uploaded, builtin)


def test_the_worker_cached_the_dataset_by_its_hash(trained: TestClient, settings: Settings):
    with trained.app.state.session_factory() as session:
        from service.storage.datasets import get_version

        expected = get_version(session, "fashion", 1).data_sha256
    assert [p.name for p in cache_dir(settings).iterdir()] == [f"{expected}.safetensors"]


def test_predictions_answer_with_the_dataset_class_names(trained: TestClient, data_dir: Path):
    from service.training.datasets import load_dataset

    test = load_dataset("fashion_mnist", data_dir, train_subset=1, test_subset=8).test
    files = [("file", (f"{i}.png", image_bytes(im[0].numpy()), "image/png")) for i, im in enumerate(test.images)]
    response = trained.post("/jobs/1/predict", files=files)
    assert response.status_code == 200, response.text
    answer = response.json()["predictions"]
    names = {class_folder_name(i) for i in range(10)}
    assert {p["label"] for p in answer} <= names
    right = sum(p["label"] == class_folder_name(int(label)) for p, label in zip(answer, test.labels, strict=True))
    assert right >= 5


def test_the_model_card_carries_the_dataset(trained: TestClient):
    response = trained.get("/jobs/1/export/card", params={"format": "onnx"})
    assert response.status_code == 200, response.text
    card = response.json()["card"]
    assert card["dataset"] == "fashion@1"
    assert card["class_labels"] == sorted(class_folder_name(i) for i in range(10))
    assert (card["input"]["size"], card["input"]["native_size"], card["input"]["channels"]) == (28, 28, 1)


def test_a_clone_keeps_the_pinned_version(trained: TestClient, data_dir: Path):
    newer = zip_bytes(fashion_files(data_dir, train=300))
    assert trained.post("/datasets", params={"name": "fashion"}, content=newer).json()["version"] == 2
    clone = trained.post("/jobs/1/clone", json={"overrides": {"epochs": 1}})
    assert clone.status_code == 201 and clone.json()["spec"]["dataset"] == "fashion@1"
    latest = trained.post("/jobs", json={**JOB, "dataset": "fashion"}).json()
    assert latest["spec"]["dataset"] == "fashion@2"
    for job in (clone.json(), latest):
        assert trained.post(f"/jobs/{job['id']}/cancel").status_code == 200


def test_a_sweep_pins_its_base_dataset(trained: TestClient):
    sweep = {
        "base": {**JOB, "dataset": "fashion", "epochs": 1},
        "space": {"optimizer.lr": {"values": [0.01]}},
        "max_trials": 1,
    }
    response = trained.post("/sweeps", json=sweep)
    assert response.status_code == 201, response.text
    trial_job = response.json()["trials"][0]["job_id"]
    assert trained.get(f"/jobs/{trial_job}").json()["spec"]["dataset"].startswith("fashion@")
    trained.post(f"/sweeps/{response.json()['id']}/cancel")


def test_deleting_a_version_a_job_uses_is_refused_naming_the_job(trained: TestClient):
    response = trained.delete("/datasets/fashion/versions/1")
    assert response.status_code == 409
    assert "job 1" in response.json()["detail"]


def test_an_unknown_dataset_is_refused_naming_the_field(trained: TestClient):
    for name, words in (("flowers", "dataset: dataset 'flowers' not found"), ("fashion@9", "fashion@9 not found")):
        response = trained.post("/jobs", json={**JOB, "dataset": name})
        assert response.status_code == 422 and words in response.json()["detail"], response.text
    bad = trained.post("/jobs", json={**JOB, "dataset": "Not A Name!"})
    assert bad.status_code == 422 and "dataset" in bad.json()["detail"]
