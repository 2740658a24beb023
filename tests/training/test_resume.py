"""Exact resume on CPU: a run stopped (after an epoch or mid-epoch) and resumed equals an uninterrupted run."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load

from service.errors import CheckpointError
from service.jobspec.spec import JobRequest, JobSpec, OptimizerSpec, SchedulerSpec
from service.training import fit
from tests.training.recorder import Recorder, without_timing


def _weights(checkpoint_data: bytes) -> dict[str, torch.Tensor]:
    return {k: v for k, v in st_load(checkpoint_data).items() if k.startswith(("model.", "optim."))}


def _assert_resume_is_exact(spec: JobSpec, data_dir: Path, stopper: Recorder) -> None:
    whole = Recorder()
    whole_result = fit(spec, data_dir=data_dir, callbacks=whole, device="cpu")
    first_result = fit(spec, data_dir=data_dir, callbacks=stopper, device="cpu")
    assert first_result.status == "stopped"
    rest = Recorder()
    rest_result = fit(spec, data_dir=data_dir, callbacks=rest, device="cpu", resume_from=stopper.checkpoints[-1].data)
    assert rest_result.status == "completed" and rest_result.step == whole_result.step
    assert rest.info is not None and rest.info.resumed_from_step == first_result.step
    # Bit for bit: weights, BatchNorm statistics and optimizer state, then every metric and loss record.
    expected, actual = _weights(whole.checkpoints[-1].data), _weights(rest.checkpoints[-1].data)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert [without_timing(e) for e in stopper.epochs + rest.epochs] == [without_timing(e) for e in whole.epochs]
    assert [(r.step, r.loss) for r in stopper.steps + rest.steps] == [(r.step, r.loss) for r in whole.steps]
    assert rest_result.best_metrics is not None and whole_result.best_metrics is not None
    assert without_timing(rest_result.best_metrics) == without_timing(whole_result.best_metrics)


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        JobRequest(architecture="bn_lenet", epochs=2, train_subset=1024, test_subset=512, batch_size=128).resolve(),
        JobRequest(
            architecture="resnet18", epochs=2, train_subset=64, test_subset=32, batch_size=16, resize=32
        ).resolve(),
    ],
    ids=["bn_lenet", "resnet18-32px"],
)
def test_resume_after_epoch_one_of_two_is_bit_identical(spec: JobSpec, data_dir: Path) -> None:
    _assert_resume_is_exact(spec, data_dir, Recorder(stop_after_epoch=1))


def test_stop_mid_epoch_then_resume_is_bit_identical(data_dir: Path) -> None:
    spec = JobRequest(
        architecture="bn_lenet",
        epochs=2,
        train_subset=1000,  # 8 batches of 128, the last one short
        test_subset=256,
        batch_size=128,
        log_every=200,
        scheduler=SchedulerSpec(name="cosine", warmup_epochs=0.5),
    ).resolve()
    _assert_resume_is_exact(spec, data_dir, Recorder(stop_after_polls=11))  # stops in epoch 2, after 2 steps


def test_resume_with_a_hand_written_optimizer_is_bit_identical(data_dir: Path) -> None:
    optimizer = OptimizerSpec(name="adam", lr=0.01, implementation="scratch")
    spec = JobRequest(
        architecture="bn_lenet", dataset="synthetic", epochs=2, train_subset=512, batch_size=64, optimizer=optimizer
    ).resolve()
    _assert_resume_is_exact(spec, data_dir, Recorder(stop_after_polls=5))


def test_resume_refuses_a_checkpoint_of_another_job(data_dir: Path) -> None:
    spec = JobRequest(architecture="bn_lenet", dataset="synthetic", epochs=2, train_subset=256, batch_size=64).resolve()
    stopper = Recorder(stop_after_epoch=1)
    fit(spec, data_dir=data_dir, callbacks=stopper, device="cpu")
    other = spec.model_copy(update={"seed": 1})
    with pytest.raises(CheckpointError, match=r"different job spec.*seed"):
        fit(other, data_dir=data_dir, device="cpu", resume_from=stopper.checkpoints[-1].data)


def test_resuming_a_finished_run_does_nothing_more(data_dir: Path) -> None:
    spec = JobRequest(architecture="bn_lenet", dataset="synthetic", epochs=1, train_subset=256, batch_size=64).resolve()
    done = Recorder()
    fit(spec, data_dir=data_dir, callbacks=done, device="cpu")
    again = Recorder()
    result = fit(spec, data_dir=data_dir, callbacks=again, device="cpu", resume_from=done.checkpoints[-1].data)
    assert result.status == "completed" and again.steps == [] and again.checkpoints == []
    assert result.final_metrics == done.epochs[-1]
