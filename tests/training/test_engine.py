"""The training loop on real Fashion-MNIST and synthetic data: learning, records, determinism, divergence."""

import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load

from service.jobspec.spec import JobRequest, JobSpec, OptimizerSpec, SchedulerSpec
from service.training import fit, load_checkpoint
from tests.training.recorder import Recorder, without_timing

# Real data, the book's preset (SGD, lr 1.0, batch 256, Xavier init), one epoch on the first 10,000 examples.
BOOK_10K = {"train_subset": 10_000, "epochs": 1, "seed": 0}


def _fit(spec: JobSpec, data_dir: Path, **kwargs) -> tuple[Recorder, object]:
    recorder = kwargs.pop("recorder", None) or Recorder()
    result = fit(spec, data_dir=data_dir, callbacks=recorder, device="cpu", **kwargs)
    return recorder, result


@pytest.mark.slow
def test_bn_lenet_learns_fashion_mnist_with_the_book_preset_and_lenet_learns_more_slowly(data_dir: Path) -> None:
    bn, bn_result = _fit(JobRequest(architecture="bn_lenet", **BOOK_10K).resolve(), data_dir)
    plain, _ = _fit(JobRequest(architecture="lenet", **BOOK_10K).resolve(), data_dir)
    assert bn_result.status == "completed"
    # Train-mode metrics over the epoch: BN-LeNet learns at lr 1.0, the sigmoid LeNet barely moves from chance.
    assert bn.epochs[0].train_acc >= 0.55 and bn.epochs[0].train_loss <= 1.4
    assert plain.epochs[0].train_acc <= 0.25
    assert bn.epochs[0].train_acc >= plain.epochs[0].train_acc + 0.3
    # Evaluated with moving statistics right after a constant lr of 1.0 the test accuracy is unstable (as in the
    # book, 0.2-0.75 here depending on seed and subset), so only "better than chance" is asserted.
    assert bn.epochs[0].test_acc >= 0.2 and bn.epochs[0].test_acc > plain.epochs[0].test_acc


@pytest.mark.slow
def test_bn_lenet_with_the_book_lr_and_a_cosine_schedule_is_stable_on_the_test_set(data_dir: Path) -> None:
    spec = JobRequest(architecture="bn_lenet", scheduler=SchedulerSpec(name="cosine"), **BOOK_10K).resolve()
    recorder, _ = _fit(spec, data_dir)
    assert recorder.epochs[0].test_acc >= 0.70


def test_run_info_describes_the_run(data_dir: Path) -> None:
    spec = JobRequest(architecture="bn_lenet", epochs=2, train_subset=300, test_subset=100, batch_size=100).resolve()
    recorder, _ = _fit(spec, data_dir)
    info = recorder.info
    assert info is not None
    assert (info.steps_per_epoch, info.total_steps, info.train_size, info.test_size) == (3, 6, 300, 100)
    assert info.class_names[9] == "Ankle boot" and info.num_parameters == 44_878
    assert len(info.dataset_checksum) == 64 and info.torch_version == torch.__version__
    assert info.device == "cpu" and info.amp_dtype is None and not info.channels_last


def test_step_records_come_every_log_every_examples_and_epochs_report_all_metrics(data_dir: Path) -> None:
    spec = JobRequest(
        architecture="bn_lenet", dataset="synthetic", epochs=2, train_subset=1000, batch_size=50, log_every=100
    ).resolve()
    recorder, result = _fit(spec, data_dir)
    assert [r.examples_seen for r in recorder.steps] == list(range(100, 2001, 100))
    assert [r.step for r in recorder.steps] == list(range(2, 41, 2))
    assert {r.epoch for r in recorder.steps[:10]} == {1} and {r.epoch for r in recorder.steps[10:]} == {2}
    assert all(math.isfinite(r.loss) for r in recorder.steps)
    assert [e.epoch for e in recorder.epochs] == [1, 2]
    assert all(0 <= e.train_acc <= 1 and 0 <= e.test_acc <= 1 and e.images_per_sec > 0 for e in recorder.epochs)
    assert [c.epoch for c in recorder.checkpoints] == [1, 2] and recorder.checkpoints[-1].metrics == recorder.epochs[-1]
    assert result.status == "completed" and result.epochs_completed == 2 and result.step == 40
    assert result.final_metrics == recorder.epochs[-1]
    assert result.best_metrics == max(recorder.epochs, key=lambda e: e.test_acc)


def test_progress_is_reported_from_the_first_batch(data_dir: Path) -> None:
    spec = JobRequest(architecture="bn_lenet", dataset="synthetic", epochs=2, train_subset=256, batch_size=64).resolve()
    recorder, _ = _fit(spec, data_dir)
    first = recorder.progress[0]
    assert (first.epoch, first.step, first.batches_done, first.total_steps) == (1, 1, 1, 8)
    assert first.fraction == 1 / 8
    assert all(0 < p.fraction <= 1 for p in recorder.progress)


def test_synthetic_patterns_are_learnable(data_dir: Path) -> None:
    spec = JobRequest(
        architecture="bn_lenet",
        dataset="synthetic",
        epochs=3,
        train_subset=2048,
        batch_size=64,
        optimizer=OptimizerSpec(lr=0.1, momentum=0.9),
        scheduler=SchedulerSpec(name="cosine"),
    ).resolve()
    recorder, _ = _fit(spec, data_dir)
    assert recorder.epochs[-1].test_acc >= 0.9


def test_training_is_deterministic_for_a_seed_on_cpu(data_dir: Path) -> None:
    spec = JobRequest(
        architecture="bn_lenet", epochs=1, train_subset=512, test_subset=256, batch_size=64, seed=7
    ).resolve()
    first, _ = _fit(spec, data_dir)
    second, _ = _fit(spec, data_dir)
    other, _ = _fit(spec.model_copy(update={"seed": 8}), data_dir)
    assert [r.loss for r in first.steps] == [r.loss for r in second.steps]
    assert without_timing(first.epochs[0]) == without_timing(second.epochs[0])
    first_tensors, second_tensors = st_load(first.checkpoints[0].data), st_load(second.checkpoints[0].data)
    assert all(torch.equal(t, second_tensors[name]) for name, t in first_tensors.items())
    assert [r.loss for r in first.steps] != [r.loss for r in other.steps]


@pytest.mark.parametrize(("architecture", "resize"), [("bn_lenet", 28), ("resnet18", 32)])
def test_divergence_at_lr_1e6_stops_with_a_clear_message(data_dir: Path, architecture: str, resize: int) -> None:
    spec = JobRequest(
        architecture=architecture,
        epochs=2,
        train_subset=1024,
        batch_size=64,
        resize=resize,
        optimizer=OptimizerSpec(lr=1e6),
    ).resolve()
    recorder, result = _fit(spec, data_dir)
    assert result.status == "diverged"
    match = re.fullmatch(r"diverged at epoch 1, step (\d+) \(loss=(.+)\)", result.message)
    assert match is not None, result.message
    loss = float(match.group(2))
    assert not math.isfinite(loss) or loss > 1e4
    assert recorder.epochs == [] and recorder.checkpoints == [] and result.epochs_completed == 0
    assert result.step == int(match.group(1)) <= 5


def test_cooperative_stop_mid_epoch_leaves_a_checkpoint(data_dir: Path) -> None:
    spec = JobRequest(architecture="bn_lenet", epochs=2, train_subset=512, test_subset=128, batch_size=64).resolve()
    recorder, result = _fit(spec, data_dir, recorder=Recorder(stop_after_polls=3))
    assert result.status == "stopped" and result.step == 3 and result.epochs_completed == 0
    assert result.message == "stopped at epoch 1, step 3"
    checkpoint = recorder.checkpoints[-1]
    assert (checkpoint.epoch, checkpoint.step, checkpoint.metrics) == (0, 3, None)
    assert load_checkpoint(checkpoint.data).step == 3


def test_scratch_optimizer_trains_through_fit(data_dir: Path) -> None:
    optimizer = OptimizerSpec(name="adam", lr=0.01, implementation="scratch")
    spec = JobRequest(
        architecture="bn_lenet", dataset="synthetic", epochs=1, train_subset=1024, batch_size=64, optimizer=optimizer
    ).resolve()
    recorder, result = _fit(spec, data_dir)
    assert result.status == "completed" and recorder.steps[-1].loss < recorder.steps[0].loss
