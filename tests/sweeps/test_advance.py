"""Advancing a sweep on a real database: racing advancers ask for each trial once; the sweep ends by itself."""

import threading

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.jobspec.status import JobStatus, SweepStatus
from service.storage import sweeps as store
from service.storage.orm import Job
from service.sweeps.advance import advance_sweep, create_sweep
from service.sweeps.definition import SweepDefinition

DEFINITION = SweepDefinition.model_validate(
    {
        "base": {"architecture": "bn_lenet", "dataset": "synthetic", "epochs": 1},
        "space": {"seed": {"low": 0, "high": 10**6}},
        "sampler": "random",
        "max_trials": 4,
        "max_concurrent": 2,
    }
)


def _finish_all_jobs(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.execute(update(Job).values(status=JobStatus.succeeded))
        session.commit()


def _race(factory: sessionmaker[Session], sweep_id: int, racers: int) -> None:
    start = threading.Barrier(racers)
    errors: list[BaseException] = []

    def advance() -> None:
        try:
            with factory() as session:
                start.wait()
                advance_sweep(session, sweep_id)
                session.commit()
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=advance) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_racing_advancers_ask_for_each_trial_exactly_once(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        sweep_id = create_sweep(session, DEFINITION, check=lambda spec: None).id
        session.commit()
    _finish_all_jobs(session_factory)  # trials 0 and 1 ended: room for two more
    _race(session_factory, sweep_id, racers=6)
    with session_factory() as session:
        rows = store.trials_with_jobs(session, sweep_id)
        assert [trial.number for trial, _ in rows] == [0, 1, 2, 3]
        assert [job.status for _, job in rows] == [JobStatus.succeeded] * 2 + [JobStatus.queued] * 2
        assert store.get_sweep(session, sweep_id).trials_asked == 4


def test_sweep_succeeds_once_its_last_trial_ends(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        sweep_id = create_sweep(session, DEFINITION, check=lambda spec: None).id
        session.commit()
    for expected in (SweepStatus.running, SweepStatus.succeeded):
        _finish_all_jobs(session_factory)
        with session_factory() as session:
            advance_sweep(session, sweep_id)
            session.commit()
            assert store.get_sweep(session, sweep_id).status is expected
    with session_factory() as session:
        assert len(store.trials_with_jobs(session, sweep_id)) == 4
