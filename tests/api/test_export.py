"""GET /jobs/{id}/export over real HTTP: a verified ONNX file with its model card, served from the store the
second time, refused with a 4xx for corrupt or mismatched checkpoints and inexact exports; both backends
answering predictions alike."""

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from service.access import Scope
from service.config import ServingSettings, Settings
from service.inference.backends import OrtModel
from service.inference.export import CARD_KEY, TOLERANCE, weights_sha256
from service.main import create_app
from service.storage import exports
from service.storage.orm import Checkpoint
from service.training import load_checkpoint
from tests.api.auth_helpers import bearer, issue_token, required_settings
from tests.api.conftest import SMALL_JOB, make_client, make_settings


def copy_database(source: Settings, state_dir: Path) -> None:
    """A copy of the trained job's SQLite database, so these tests may add jobs and damage checkpoints."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source.state_dir / "convlab.db") as src, sqlite3.connect(state_dir / "convlab.db") as dst:
        src.backup(dst)


@pytest.fixture(scope="module")
def state_dir(trained_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exports")
    copy_database(trained_settings, path)
    return path


@pytest.fixture(scope="module")
def client(state_dir: Path, data_dir: Path) -> Iterator[TestClient]:
    with make_client(create_app(make_settings(state_dir, data_dir))) as client:
        yield client


def checkpoint_bytes(client: TestClient, epoch: int = 2) -> bytes:
    response = client.get(f"/jobs/1/checkpoints/{epoch}")
    assert response.status_code == 200
    return response.content


def job_with_checkpoint(client: TestClient, data: bytes, *, sha256: str | None = None) -> int:
    """A new (queued) job holding one checkpoint of epoch 1 with `data` (and a recorded sha256)."""
    job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
    with client.app.state.session_factory() as session:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        session.add(Checkpoint(job_id=job_id, attempt=1, epoch=1, step=1, sha256=digest, size=len(data), data=data))
        session.commit()
    return job_id


def retamper(data: bytes, *, meta: dict | None = None, scale: dict[str, float] | None = None) -> bytes:
    """The checkpoint re-saved with edited JSON metadata and/or scaled tensors (what a bug could write)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    metadata = json.loads(header["__metadata__"]["convlab"])
    metadata.update(meta or {})
    tensors = st_load(data)
    for name, factor in (scale or {}).items():
        tensors[name] = tensors[name] * factor
    return st_save(tensors, metadata={"convlab": json.dumps(metadata)})


def card_of(data: bytes) -> dict:
    return json.loads({p.key: p.value for p in onnx.load_from_string(data).metadata_props}[CARD_KEY])


def test_export_serves_a_verified_onnx_file_with_its_model_card(client, test_images):
    response = client.get("/jobs/1/export", params={"format": "onnx", "epoch": 2})
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert 0 <= float(response.headers["x-export-max-abs-diff"]) <= TOLERANCE
    source = checkpoint_bytes(client, 2)
    assert response.headers["x-checkpoint-sha256"] == hashlib.sha256(source).hexdigest()
    card = card_of(response.content)
    assert (card["architecture"], card["epoch"], card["dataset"]) == ("bn_lenet", 2, "fashion_mnist")
    assert card["class_labels"][0] == "T-shirt/top" and card["spec"]["optimizer"]["name"] == "adam"
    assert card["weights_sha256"] == weights_sha256(load_checkpoint(source).model)
    assert card["metrics"]["epoch"] == 2 and "test split" in card["verification"]["inputs"]


def test_the_exported_file_answers_as_the_predict_endpoint_does(client, test_images):
    data = client.get("/jobs/1/export", params={"epoch": 2}).content
    card = card_of(data)
    images, _ = test_images
    norm = card["input"]["normalization"]
    x = (images[:16, None].astype(np.float32) * norm["scale"] - norm["mean"][0]) / norm["std"][0]  # 28x28: no resize
    logits = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    probs = torch.softmax(torch.from_numpy(logits), dim=1)
    answer = client.post("/jobs/1/predict?checkpoint=2", json={"pixels": images[:16].tolist()}).json()
    for row, prediction in zip(probs, answer["predictions"], strict=True):
        assert card["class_labels"][int(row.argmax())] == prediction["label"]
        assert abs(float(row.max()) - prediction["probability"]) <= 1e-5


def test_the_second_export_is_served_from_the_store(client):
    job_id = job_with_checkpoint(client, checkpoint_bytes(client, 1))
    first = client.get(f"/jobs/{job_id}/export", params={"format": "onnx"})
    second = client.get(f"/jobs/{job_id}/export", params={"format": "onnx"})
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-export-cache"], second.headers["x-export-cache"]) == ("miss", "hit")
    assert first.content == second.content
    card = client.get(f"/jobs/{job_id}/export/card", params={"format": "onnx"}).json()
    assert card["cached"] is True and card["card"] == card_of(first.content)
    assert card["sha256"] == hashlib.sha256(first.content).hexdigest() and card["size"] == len(first.content)
    with client.app.state.session_factory() as session:
        checkpoint_id = session.query(Checkpoint.id).filter_by(job_id=job_id).scalar()
        assert exports.count_exports(session, checkpoint_id) == 1


def test_export_answers_4xx_with_a_detail(client):
    queued = client.post("/jobs", json=SMALL_JOB).json()["id"]
    cases = [
        ("/jobs/999/export", {}, 404),
        ("/jobs/1/export", {"epoch": 77}, 404),
        ("/jobs/1/export", {"format": "tflite"}, 422),
        ("/jobs/1/export", {"epoch": -1}, 422),
        (f"/jobs/{queued}/export", {}, 409),
        (f"/jobs/{queued}/export/card", {}, 409),
    ]
    for path, params, status in cases:
        response = client.get(path, params=params)
        assert response.status_code == status, (path, params)
        assert response.json()["detail"]


def test_a_corrupt_checkpoint_is_refused_with_422(client):
    good = checkpoint_bytes(client, 1)
    truncated = job_with_checkpoint(client, good[: len(good) // 2])
    response = client.get(f"/jobs/{truncated}/export")
    assert response.status_code == 422 and "corrupt" in response.json()["detail"]
    flipped = bytearray(good)
    flipped[-100] ^= 0xFF  # inside the tensors: parses, but no longer what was recorded
    damaged = job_with_checkpoint(client, bytes(flipped), sha256=hashlib.sha256(good).hexdigest())
    response = client.get(f"/jobs/{damaged}/export")
    assert response.status_code == 422 and "sha256" in response.json()["detail"]


def test_a_checkpoint_that_does_not_fit_its_architecture_is_refused_with_422(client):
    mismatched = retamper(checkpoint_bytes(client, 1), meta={"num_classes": 12})
    response = client.get(f"/jobs/{job_with_checkpoint(client, mismatched)}/export")
    assert response.status_code == 422 and "does not fit bn_lenet" in response.json()["detail"]


def test_an_export_beyond_the_tolerance_is_refused_with_422(client):
    # Logits around 1e7: float32 rounding alone puts onnxruntime and PyTorch further apart than 1e-4.
    huge = retamper(checkpoint_bytes(client, 1), scale={"model.15.weight": 1e7, "model.15.bias": 1e7})
    response = client.get(f"/jobs/{job_with_checkpoint(client, huge)}/export")
    assert response.status_code == 422 and "export refused" in response.json()["detail"]
    assert float(response.headers["x-export-max-abs-diff"]) > TOLERANCE


def assert_same_predictions(expected: list[dict], got: list[dict]) -> None:
    for a, b in zip(expected, got, strict=True):
        assert a["class_index"] == b["class_index"]
        pairs = zip(a["top_k"], b["top_k"], strict=True)
        assert max(abs(x["probability"] - y["probability"]) for x, y in pairs) <= 1e-5


def served_model(app, job_id: int) -> torch.nn.Module:
    """The model the predictor's cache serves for the job's predictions (its best checkpoint, already loaded)."""
    predictor = app.state.predictor
    key = predictor.choose(job_id, None).key
    assert predictor.cache.holds(key)
    return predictor.cache.get(key, lambda: b"", torch.device("cpu")).model


def backend_client(state_dir: Path, data_dir: Path, backend: str) -> TestClient:
    serving = ServingSettings(events_poll_seconds=0.05, inference_backend=backend)
    return make_client(create_app(make_settings(state_dir, data_dir).model_copy(update={"serving": serving})))


def test_onnxruntime_backend_predicts_as_torch_does(state_dir, data_dir, client, test_images):
    images = test_images[0][:32].tolist()
    by_torch = client.post("/jobs/1/predict?top_k=10", json={"pixels": images}).json()["predictions"]
    with backend_client(state_dir, data_dir, "onnxruntime") as other:
        answer = other.post("/jobs/1/predict?top_k=10", json={"pixels": images})
        assert answer.status_code == 200
        assert isinstance(served_model(other.app, 1), OrtModel)  # exported at the first load, before answering
    assert_same_predictions(by_torch, answer.json()["predictions"])


def test_auto_answers_with_torch_at_once_then_serves_the_faster_backend_after_its_background_measurement(
    state_dir, data_dir, client, test_images, monkeypatch
):
    images = test_images[0][:32].tolist()
    by_torch = client.post("/jobs/1/predict?top_k=10", json={"pixels": images}).json()["predictions"]
    with backend_client(state_dir, data_dir, "auto") as other:
        backends = other.app.state.predictor.backends
        gate, export = threading.Event(), backends.exporter.onnx_for
        monkeypatch.setattr(backends.exporter, "onnx_for", lambda *args: gate.wait(60) and export(*args))
        first = other.post("/jobs/1/predict?top_k=10", json={"pixels": images})  # while the export is held
        assert first.status_code == 200 and not isinstance(served_model(other.app, 1), OrtModel)
        gate.set()
        backends.settle(timeout=120)  # the export and the measurement, in the background thread
        verdict = backends.verdicts()[("bn_lenet", 1, 28, "cpu")]  # onnxruntime here: 3-6x torch's speed
        assert isinstance(served_model(other.app, 1), OrtModel) == (verdict == "onnxruntime")
        later = other.post("/jobs/1/predict?top_k=10", json={"pixels": images})
    assert_same_predictions(by_torch, first.json()["predictions"])
    assert_same_predictions(by_torch, later.json()["predictions"])


def test_export_needs_the_jobs_read_scope(tmp_path, data_dir):
    app = create_app(required_settings(tmp_path, data_dir))
    with make_client(app) as client:
        assert client.get("/jobs/1/export").status_code == 401
        predict_only = bearer(issue_token(app, "predictor", Scope.predict))
        refused = client.get("/jobs/1/export/card", headers=predict_only)
        assert refused.status_code == 403 and "jobs:read" in refused.json()["detail"]
        reader = bearer(issue_token(app, "reader", Scope.jobs_read))
        assert client.get("/jobs/1/export", headers=reader).status_code == 404  # admitted: no such job here
