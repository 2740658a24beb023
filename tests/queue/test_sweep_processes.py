"""A sweep driven by real `convlab worker` processes: killing one with SIGKILL mid-sweep duplicates no trial."""

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.jobspec.status import JobStatus, SweepStatus
from service.storage import sweeps as store
from service.storage.orm import Job
from service.sweeps.advance import create_sweep
from service.sweeps.definition import SweepDefinition
from tests.queue.processes import start_worker, stop, wait_for, worker_env

# Trials long enough (64 steps, progress written twice a second) to be caught mid-training.
DEFINITION = SweepDefinition.model_validate(
    {
        "base": {
            "architecture": "bn_lenet",
            "dataset": "synthetic",
            "epochs": 1,
            "batch_size": 16,
            "train_subset": 1024,
            "test_subset": 64,
        },
        "space": {"optimizer.lr": {"low": 0.01, "high": 0.5, "log": True}},
        "sampler": "random",
        "max_trials": 4,
        "max_concurrent": 2,
        "seed": 11,
    }
)


def _running_mid_trial(factory: sessionmaker[Session], sweep_id: int) -> bool:
    with factory() as session:
        sweep = store.get_sweep(session, sweep_id)
        rows = store.trials_with_jobs(session, sweep_id)
        running = [job for _, job in rows if job.status is JobStatus.running and job.step > 0]
        return sweep.trials_asked >= 3 and bool(running)


def _sweep_ended(factory: sessionmaker[Session], sweep_id: int) -> bool:
    with factory() as session:
        return store.get_sweep(session, sweep_id).status is not SweepStatus.running


def test_sigkilled_worker_mid_sweep_leaves_no_duplicate_trial(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, data_dir: Path
) -> None:
    with session_factory() as session:
        sweep_id = create_sweep(session, DEFINITION, check=lambda spec: None).id
        session.commit()
    env = worker_env(db_url, tmp_path, data_dir)
    victim = start_worker(env, tmp_path)
    try:
        wait_for(lambda: _running_mid_trial(session_factory, sweep_id), "a trial mid-training after two ended")
    finally:
        victim.kill()  # SIGKILL: its trial's lease runs out and another worker resumes it
    victim.wait()
    survivors = [start_worker(env, tmp_path) for _ in range(2)]
    try:
        wait_for(lambda: _sweep_ended(session_factory, sweep_id), "the sweep to end")
    finally:
        assert [stop(worker) for worker in survivors] == [0, 0]
    with session_factory() as session:
        sweep = store.get_sweep(session, sweep_id)
        rows = store.trials_with_jobs(session, sweep_id)
        assert sweep.status is SweepStatus.succeeded and sweep.trials_asked == 4
        assert [trial.number for trial, _ in rows] == [0, 1, 2, 3]
        assert len({job.id for _, job in rows}) == 4 and session.scalar(select(func.count()).select_from(Job)) == 4
        assert all(job.status is JobStatus.succeeded for _, job in rows)
        assert sum(job.lost_leases for _, job in rows) == 1  # the killed worker's trial was resumed, not redone
        assert len({trial.params["optimizer.lr"] for trial, _ in rows}) == 4
