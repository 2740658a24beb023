"""Early stopping on real Fashion-MNIST: the job ends once its test metric stops improving, says why, succeeds,
and a resumed run stops where an uninterrupted one does."""

from pathlib import Path

import pytest

from service.config import JobLimits
from service.jobspec.spec import JobRequest
from service.jobspec.status import FitStatus
from service.main import create_app
from service.storage.jobs import best_checkpoint_id
from service.storage.orm import Checkpoint
from service.training import fit
from service.training.records import Callbacks
from service.training.records import Checkpoint as TrainingCheckpoint
from service.worker import run_worker
from tests.api.conftest import make_client, make_settings
from tests.queue.processes import status_events

# min_delta 1.0: no epoch can improve test accuracy by more than 1, so only the first epoch ever counts as best.
SPEC = {
    "architecture": "bn_lenet",
    "dataset": "fashion_mnist",
    "epochs": 10,
    "batch_size": 128,
    "optimizer": {"name": "adam", "lr": 0.01},
    "train_subset": 1024,
    "test_subset": 256,
    "early_stopping": {"metric": "test_acc", "patience": 2, "min_delta": 1.0},
}


class Keep(Callbacks):
    def __init__(self) -> None:
        self.checkpoints: list[TrainingCheckpoint] = []

    def on_checkpoint(self, checkpoint: TrainingCheckpoint) -> None:
        self.checkpoints.append(checkpoint)


def test_a_run_ends_once_patience_runs_out(data_dir: Path):
    result = fit(JobRequest.model_validate(SPEC).resolve(), data_dir=data_dir)
    assert result.status is FitStatus.early_stopped
    assert result.epochs_completed == 3
    assert "test_acc did not improve by more than 1 for 2 epoch(s)" in result.message
    assert "at epoch 1" in result.message


def test_a_loss_that_keeps_falling_runs_to_the_end(data_dir: Path):
    spec = {**SPEC, "epochs": 3, "early_stopping": {"metric": "test_loss", "patience": 3}}
    result = fit(JobRequest.model_validate(spec).resolve(), data_dir=data_dir)
    assert result.status is FitStatus.completed and result.epochs_completed == 3


def test_a_resumed_run_stops_at_the_same_epoch(data_dir: Path):
    spec = JobRequest.model_validate(SPEC).resolve()
    kept = Keep()
    whole = fit(spec, data_dir=data_dir, callbacks=kept)
    resumed = fit(spec, data_dir=data_dir, resume_from=kept.checkpoints[1].data)  # after epoch 2
    assert resumed.status is FitStatus.early_stopped
    assert resumed.epochs_completed == whole.epochs_completed == 3
    assert resumed.final_metrics is not None and whole.final_metrics is not None
    assert (resumed.final_metrics.test_acc, resumed.final_metrics.train_loss) == (
        whole.final_metrics.test_acc,
        whole.final_metrics.train_loss,
    )


def test_an_early_stopped_job_succeeds_with_the_reason(tmp_path: Path, data_dir: Path):
    settings = make_settings(tmp_path, data_dir, jobs=JobLimits(max_epochs=20))
    with make_client(create_app(settings)) as client:
        assert client.post("/jobs", json=SPEC).status_code == 201
        run_worker(settings, burst=True)
        job = client.get("/jobs/1").json()
        epochs = client.get("/jobs/1/history").json()["epochs"]
        reasons = [e["reason"] for e in status_events(client.app.state.session_factory, 1)]
    assert job["status"] == "succeeded" and len(epochs) == 3
    assert "stopped early after epoch 3" in reasons[-1]


@pytest.mark.parametrize("bad", [{"patience": 0}, {"metric": "train_acc"}, {"min_delta": -0.1}])
def test_a_bad_rule_is_refused(bad: dict):
    with pytest.raises(ValueError, match="early_stopping"):
        JobRequest.model_validate({**SPEC, "early_stopping": bad})


def test_the_best_checkpoint_is_the_early_stopping_metric_s_best():
    """Accuracy peaks at epoch 2, loss bottoms at epoch 3: a job stopping early on test_loss calls epoch 3 its
    best, every other job epoch 2; the latest wins a tie, and with no metrics the latest is the best."""
    rows = [
        Checkpoint(id=epoch, epoch=epoch, step=10 * epoch, metrics={"test_acc": acc, "test_loss": loss})
        for epoch, acc, loss in ((1, 0.70, 0.90), (2, 0.82, 0.60), (3, 0.80, 0.55))
    ]
    assert best_checkpoint_id(rows) == 2
    assert best_checkpoint_id(rows, metric="test_loss") == 3
    tie = Checkpoint(id=4, epoch=4, step=40, metrics={"test_acc": 0.82, "test_loss": 0.7})
    assert best_checkpoint_id([*rows, tie]) == 4
    assert best_checkpoint_id([Checkpoint(id=i, epoch=i, step=i, metrics=None) for i in (1, 2)]) == 2


def test_predictions_use_the_best_checkpoint_by_the_stopping_metric(tmp_path: Path, data_dir: Path):
    spec = {**SPEC, "early_stopping": {"metric": "test_loss", "patience": 2, "min_delta": 10.0}, "keep_checkpoints": 1}
    settings = make_settings(tmp_path, data_dir, jobs=JobLimits(max_epochs=20))
    with make_client(create_app(settings)) as client:
        assert client.post("/jobs", json=spec).status_code == 201
        run_worker(settings, burst=True)
        epochs = client.get("/jobs/1/history").json()["epochs"]
        lowest = min(epochs, key=lambda e: (e["test_loss"], -e["epoch"]))["epoch"]
        listed = client.get("/jobs/1/checkpoints").json()
        predicted = client.post("/jobs/1/predict", json={"pixels": [[[0.5] * 28] * 28]})
    assert len(epochs) == 3 and predicted.status_code == 200, predicted.text
    assert predicted.json()["checkpoint_epoch"] == lowest
    assert [c["epoch"] for c in listed if c["best"]] == [lowest]
