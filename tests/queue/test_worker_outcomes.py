"""How a job ends when the worker runs it in this process: errors fail it with their message."""

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service.config import QueueSettings, Settings
from service.jobspec.spec import JobRequest
from service.jobspec.status import JobStatus
from service.worker import run_worker
from tests.queue.processes import job_state, status_events, submit


def _settings(db_url: str, tmp_path: Path, data_dir: Path) -> Settings:
    return Settings(
        database_url=db_url,
        state_dir=tmp_path,
        data_dir=data_dir,
        device="cpu",
        queue=QueueSettings(lease_seconds=2, poll_seconds=0.2),
    )


def test_training_error_fails_the_job_with_its_message(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    empty = tmp_path / "no-datasets"
    empty.mkdir()
    job_id = submit(session_factory, JobRequest(architecture="bn_lenet", dataset="fashion_mnist", epochs=1).resolve())
    assert run_worker(_settings(db_url, tmp_path, empty), burst=True) == 1
    job = job_state(session_factory, job_id)
    assert job.status is JobStatus.failed and job.attempt == 1
    assert job.error is not None and "DatasetUnavailable" in job.error and "fashion" in job.error.lower()
    assert status_events(session_factory, job_id)[-1]["status"] == "failed"


def test_finished_job_records_versions_checksum_progress_and_result(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    spec = JobRequest(
        architecture="bn_lenet", dataset="synthetic", epochs=2, batch_size=64, train_subset=256, test_subset=64
    ).resolve()
    job_id = submit(session_factory, spec)
    assert run_worker(_settings(db_url, tmp_path, data_dir), burst=True) == 1
    job = job_state(session_factory, job_id)
    assert job.status is JobStatus.succeeded and job.error is None
    assert job.convlab_version and job.torch_version and job.torchvision_version
    assert job.dataset_checksum is not None and len(job.dataset_checksum) == 64
    assert (job.epoch, job.step, job.total_steps, job.total_epochs) == (2, 8, 8, 2)
    assert job.result is not None and job.result["final"]["epoch"] == 2 and job.result["best"] is not None
    assert job.finished_at is not None and job.started_at is not None and job.lease_owner is None
