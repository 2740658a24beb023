"""GET /jobs/{id}/history (+ downsampling), history.png/.svg, and the checkpoints routes."""

import hashlib
import io

from PIL import Image
from safetensors.torch import load as load_safetensors

from tests.api.conftest import SMALL_JOB


def test_history_has_steps_and_epochs_with_the_contract_fields(trained):
    history = trained.get("/jobs/1/history").json()
    steps, epochs = history["steps"], history["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert set(epochs[0]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "lr",
        "seconds",
        "images_per_sec",
    }
    assert set(steps[0]) == {"step", "epoch", "examples_seen", "loss"}
    assert [s["step"] for s in steps] == sorted(s["step"] for s in steps)
    assert history["total_steps_recorded"] == len(steps) > 10


def test_history_downsamples_long_step_series(trained):
    full = trained.get("/jobs/1/history").json()["steps"]
    thin = trained.get("/jobs/1/history", params={"max_points": 10}).json()
    assert len(thin["steps"]) <= 10 and thin["total_steps_recorded"] == len(full)
    assert thin["steps"][0] == full[0] and thin["steps"][-1] == full[-1]
    losses = [s["loss"] for s in thin["steps"]]
    assert min(losses) == min(s["loss"] for s in full) and max(losses) == max(s["loss"] for s in full)


def test_history_rejects_too_few_points_and_unknown_jobs(trained):
    assert trained.get("/jobs/1/history", params={"max_points": 3}).status_code == 422
    assert trained.get("/jobs/9/history").status_code == 404


def test_history_png_is_a_png_image(trained):
    response = trained.get("/jobs/1/history.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG" and image.size[0] > 500


def test_history_svg_is_an_svg_document(trained):
    response = trained.get("/jobs/1/history.svg")
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in response.content[:1000]


def test_plots_of_a_job_without_history_still_render(client):
    job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
    assert client.get(f"/jobs/{job_id}/history").json()["steps"] == []
    assert client.get(f"/jobs/{job_id}/history.png").content.startswith(b"\x89PNG")
    assert client.get("/jobs/77/history.png").status_code == 404


def test_checkpoints_list_epoch_step_sha256_size_metrics_and_best(trained):
    checkpoints = trained.get("/jobs/1/checkpoints").json()
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    assert sum(c["best"] for c in checkpoints) == 1
    best = next(c for c in checkpoints if c["best"])
    assert best["metrics"]["test_acc"] == max(c["metrics"]["test_acc"] for c in checkpoints)
    assert all(len(c["sha256"]) == 64 and c["size"] > 0 for c in checkpoints)


def test_checkpoint_download_is_the_safetensors_file_listed(trained):
    listed = trained.get("/jobs/1/checkpoints").json()[0]
    response = trained.get("/jobs/1/checkpoints/1")
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert "safetensors" in response.headers["content-disposition"]
    assert hashlib.sha256(response.content).hexdigest() == listed["sha256"] and len(response.content) == listed["size"]
    tensors = load_safetensors(response.content)
    assert any(name.startswith("model.") for name in tensors)


def test_checkpoint_download_404s_for_missing_epochs_and_jobs(trained):
    assert trained.get("/jobs/1/checkpoints/5").status_code == 404
    assert trained.get("/jobs/8/checkpoints/1").status_code == 404
    assert trained.get("/jobs/8/checkpoints").status_code == 404
    assert trained.get("/jobs/1/checkpoints/-1").status_code == 422
