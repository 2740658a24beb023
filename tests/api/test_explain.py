"""POST /jobs/{id}/explain: heatmaps for real Fashion-MNIST images from really trained BN-LeNet and ResNet-18
jobs, the PNG overlay, predict's answers to bad input, its rate limit, the time budget, and a cached model left
as it was."""

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from service.config import AccessSettings, AuthMode, Settings
from service.main import create_app
from service.worker import run_worker
from tests.api.conftest import make_client, make_settings, png_bytes
from tests.api.test_predict import corrupt_png

METHODS = ("gradcam", "integrated_gradients", "saliency")
# ResNet-18 kept tiny: 256 images, one epoch, 48x48 inputs (a 2x2 grid in its last stage).
RESNET_JOB = {
    "architecture": "resnet18",
    "dataset": "fashion_mnist",
    "epochs": 1,
    "batch_size": 64,
    "resize": 48,
    "optimizer": {"name": "adam", "lr": 0.001},
    "train_subset": 256,
    "test_subset": 64,
    "seed": 0,
}


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[TestClient]:
    """A client on a database whose job 1 is a ResNet-18 trained for real by the worker."""
    settings = make_settings(tmp_path_factory.mktemp("resnet"), data_dir)
    with make_client(create_app(settings)) as client:
        assert client.post("/jobs", json=RESNET_JOB).status_code == 201
    run_worker(settings, burst=True)
    with make_client(create_app(settings)) as client:
        assert client.get("/jobs/1").json()["status"] == "succeeded"
        yield client


def explain(client: TestClient, images: np.ndarray, **params) -> dict:
    response = client.post("/jobs/1/explain", params=params, json={"pixels": images.tolist()})
    assert response.status_code == 200, response.text
    return response.json()


def check_heatmaps(body: dict, n: int, side: int) -> np.ndarray:
    """The answer's heatmaps [n, side, side], checked to be grids in [0, 1] that each reach 1 (or are all 0)."""
    assert len(body["explanations"]) == n
    maps = np.array([e["heatmap"] for e in body["explanations"]])
    assert maps.shape == (n, side, side)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    peaks = maps.reshape(n, -1).max(axis=1)
    assert np.all((peaks == 1.0) | (peaks == 0.0)) and (peaks == 1.0).sum() >= n // 2
    return maps


@pytest.mark.parametrize("method", METHODS)
def test_bn_lenet_explains_32_images_in_one_call(trained, test_images, method):
    images, _ = test_images
    body = explain(trained, images[:32], method=method)
    assert body["method"] == method and body["job_id"] == 1
    check_heatmaps(body, 32, 28)
    predicted = trained.post("/jobs/1/predict", json={"pixels": images[:32].tolist()}).json()["predictions"]
    for explanation, prediction in zip(body["explanations"], predicted, strict=True):
        assert explanation["prediction"]["class_index"] == prediction["class_index"]
        assert explanation["target"]["class_index"] == prediction["class_index"]  # the default: the predicted class
        assert explanation["prediction"]["probability"] == pytest.approx(prediction["probability"], abs=1e-5)


@pytest.mark.parametrize(("method", "steps"), [("gradcam", 32), ("integrated_gradients", 8), ("saliency", 32)])
def test_resnet18_explains_32_images_in_one_call(resnet, test_images, method, steps):
    images, _ = test_images
    check_heatmaps(explain(resnet, images[:32], method=method, steps=steps), 32, 48)


def test_heatmaps_differ_between_images_and_depend_on_the_target(trained, test_images):
    images, _ = test_images
    own = check_heatmaps(explain(trained, images[:4], method="integrated_gradients"), 4, 28)
    body = explain(trained, images[:4], method="integrated_gradients", target=3)
    assert [e["target"]["class_index"] for e in body["explanations"]] == [3] * 4
    assert {e["target"]["label"] for e in body["explanations"]} == {"Dress"}
    other = np.array([e["heatmap"] for e in body["explanations"]])
    assert not np.allclose(own[0], own[1]) and not np.allclose(own, other)


def test_png_is_the_overlay_of_every_image(trained, test_images):
    images, _ = test_images
    files = [("file", (f"{i}.png", png_bytes(im), "image/png")) for i, im in enumerate(images[:10])]
    response = trained.post("/jobs/1/explain", params={"format": "png", "method": "gradcam"}, files=files)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        assert picture.size == (8 * 140, 2 * 140)  # rows of 8 tiles, 28x28 scaled by 5
        tile = np.asarray(picture)[:140, :140].astype(int)
    assert np.abs(tile[..., 0] - tile[..., 2]).max() > 50  # coloured by the heatmap, not the gray image alone


def test_the_cached_model_is_left_as_it_was(trained, test_images):
    images, _ = test_images
    before = trained.post("/jobs/1/predict", json={"pixels": images[:8].tolist()}).json()
    predictor = trained.app.state.predictor
    (loaded,) = [predictor.cache.get(key, bytes, torch.device("cpu")) for key in list(predictor.cache._items)]
    weights = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    for method in METHODS:
        explain(trained, images[:8], method=method)
    assert all(torch.equal(weights[k], v) for k, v in loaded.model.state_dict().items())
    assert all(p.grad is None for p in loaded.model.parameters()) and not loaded.model.training
    assert not loaded.model._forward_hooks and all(not m._forward_hooks for m in loaded.model.modules())
    assert trained.post("/jobs/1/predict", json={"pixels": images[:8].tolist()}).json() == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"method": "lime"}, "method"),
        ({"target": "biggest"}, "target"),
        ({"target": 10}, "target"),
        ({"target": -1}, "target"),
        ({"steps": 0}, "steps"),
        ({"format": "gif"}, "format"),
    ],
)
def test_unknown_method_or_target_answers_422_naming_the_field(trained, params, field):
    response = trained.post("/jobs/1/explain", params=params, json={"pixels": [[[0] * 28] * 28]})
    assert response.status_code == 422 and response.json()["detail"].startswith(field), response.text


BAD_REQUESTS = [
    {"files": [("file", ("a.txt", b"hello, not an image", "text/plain"))]},
    {"files": [("file", ("a.png", corrupt_png(), "image/png"))]},
    {"files": [("other", ("a.png", b"x", "image/png"))]},
    {"json": {"pixels": [[[0, 1, 2], [3, 4]]]}},
    {"json": {"pixels": [[[0, 300], [3, 4]]]}},
    {"json": {"pixels": []}},
    {"json": {"images": ["@@@ not base64 @@@"]}},
    {"json": {}},
    {"json": {"pixels": [[[0] * 28] * 28], "method": "gradcam"}},  # method travels in the query, not the body
    {"content": b'{"pixels": [', "headers": {"content-type": "application/json"}},
    {"content": b"abc", "headers": {"content-type": "text/plain"}},
]


@pytest.mark.parametrize("request_kwargs", BAD_REQUESTS)
def test_bad_input_gets_the_same_answer_as_predict(trained, request_kwargs):
    predicted = trained.post("/jobs/1/predict", **request_kwargs)
    explained = trained.post("/jobs/1/explain", **request_kwargs)
    assert 400 <= predicted.status_code < 500
    assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json())


def test_unknown_job_answers_404(trained):
    assert trained.post("/jobs/42/explain", json={"pixels": [[[0] * 28] * 28]}).status_code == 404


def with_settings(trained_settings: Settings, **changes) -> TestClient:
    serving = trained_settings.serving.model_copy(update=changes.pop("serving", {}))
    return make_client(create_app(trained_settings.model_copy(update={"serving": serving, **changes})))


def test_explain_shares_the_predict_rate_limit(trained_settings):
    access = AccessSettings(auth=AuthMode.off, predict_rate=0.001, predict_burst=2, lab_rate=0)
    with with_settings(trained_settings, access=access) as client:
        one = {"pixels": [[[0] * 28] * 28]}
        assert client.post("/jobs/1/predict", json=one).status_code == 200
        assert client.post("/jobs/1/explain", json=one).status_code == 200
        refused = client.post("/jobs/1/explain", json=one)
    assert refused.status_code == 429 and refused.headers.get("retry-after")


def test_too_many_images_answer_413_like_predict(trained_settings):
    with with_settings(trained_settings, serving={"predict_max_images": 3}) as client:
        response = client.post("/jobs/1/explain", json={"pixels": [[[0] * 28] * 28] * 4})
    assert response.status_code == 413 and "predict_max_images" in response.json()["detail"]


def test_a_call_past_its_time_budget_is_stopped_with_422(trained_settings, test_images):
    images, _ = test_images
    with with_settings(trained_settings, serving={"explain_max_seconds": 0.001}) as client:
        response = client.post(
            "/jobs/1/explain", params={"method": "integrated_gradients", "steps": 64}, json={"pixels": images.tolist()}
        )
    detail = response.json()["detail"]
    assert response.status_code == 422 and detail.startswith("budget") and "CONVLAB_EXPLAIN_MAX_SECONDS" in detail


def test_with_the_onnxruntime_backend_explanations_still_use_torch(trained_settings, tmp_path, test_images):
    """Predictions come from the verified ONNX export; explanations from torch models the explainer loads itself."""
    images, _ = test_images
    copy = tmp_path / "convlab.db"
    source, target = sqlite3.connect(trained_settings.database_url.removeprefix("sqlite:///")), sqlite3.connect(copy)
    source.backup(target)  # a consistent copy, write-ahead log included
    source.close()
    target.close()
    serving = trained_settings.serving.model_copy(update={"inference_backend": "onnxruntime"})
    settings = trained_settings.model_copy(
        update={"state_dir": tmp_path, "database_url": f"sqlite:///{copy}", "serving": serving}
    )
    with make_client(create_app(settings)) as client:
        predicted = client.post("/jobs/1/predict", json={"pixels": images[:8].tolist()}).json()["predictions"]
        body = explain(client, images[:8], method="gradcam")
        predictor = client.app.state.predictor
        assert [type(loaded.model).__name__ for loaded in predictor.cache._items.values()] == ["OrtModel"]
        assert client.app.state.explainer.cache is not predictor.cache
    check_heatmaps(body, 8, 28)
    for explanation, prediction in zip(body["explanations"], predicted, strict=True):
        assert explanation["prediction"]["class_index"] == prediction["class_index"]
        assert explanation["prediction"]["probability"] == pytest.approx(prediction["probability"], abs=1e-4)
