"""The registry's data functions on a real database (SQLite and PostgreSQL): version numbers, alias moves under
concurrency, and resolve_model_version."""

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, InvalidInput, NotFound
from service.storage import jobs, registry
from service.storage.db import begin_write
from service.storage.orm import Checkpoint, RegisteredModel
from tests.db.test_jobs_data import _train_epochs


def _model_with_versions(factory: sessionmaker[Session], count: int) -> RegisteredModel:
    """Model `m` with `count` versions, each one of the trained job's checkpoints (epochs 1, 2, ...)."""
    lease = _train_epochs(factory, [0.5 + i / 100 for i in range(count)], keep=count)
    with factory() as session:
        model = registry.create_model(session, name="m", created_by="alice")
        for checkpoint in jobs.list_checkpoints(session, lease.job_id):
            _add(session, model, checkpoint)
        session.commit()
        return model


def _add(session: Session, model: RegisteredModel, checkpoint: Checkpoint) -> int:
    version = registry.add_version(
        session, model, job_id=checkpoint.job_id, checkpoint_id=checkpoint.id, export_id=None,
        source_job_id=checkpoint.job_id, epoch=checkpoint.epoch, checkpoint_sha256=checkpoint.sha256,
        onnx_sha256="0" * 64, architecture="bn_lenet", dataset="synthetic", class_names=["a", "b"],
        metrics=checkpoint.metrics, card={}, created_by="alice",
    )  # fmt: skip
    return version.version


def _move(factory: sessionmaker[Session], number: int, who: str) -> None:
    with factory() as session:
        begin_write(session)
        registry.move_alias(session, registry.get_model(session, "m"), "prod", number, moved_by=who)
        session.commit()


def test_concurrent_alias_moves_are_all_recorded_and_chain_from_one_to_the_next(
    session_factory: sessionmaker[Session],
) -> None:
    _model_with_versions(session_factory, 2)
    moves = [(1 + i % 2, f"token-{i}") for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda move: _move(session_factory, *move), moves))
    with session_factory() as session:
        model = registry.get_model(session, "m")
        history = registry.alias_history(session, model, "prod")
        assert len(history) == 24 and history[0].from_version is None
        # No lost update: each move starts where the one recorded before it left the alias.
        assert all(later.from_version == earlier.to_version for earlier, later in itertools.pairwise(history))
        assert sorted(m.moved_by or "" for m in history) == sorted(who for _, who in moves)
        assert registry.resolve_model_version(session, "m").version == history[-1].to_version


def test_version_numbers_are_never_reused_after_a_delete(session_factory: sessionmaker[Session]) -> None:
    _model_with_versions(session_factory, 2)
    with session_factory() as session:
        model = registry.get_model(session, "m")
        registry.delete_version(session, model, 2)
        assert _add(session, model, jobs.list_checkpoints(session, 1)[0]) == 3
        session.commit()


def test_resolve_model_version_by_alias_default_prod_or_number(session_factory: sessionmaker[Session]) -> None:
    _model_with_versions(session_factory, 2)
    _move(session_factory, 2, "alice")
    _move(session_factory, 1, "alice")
    with session_factory() as session:
        prod = registry.resolve_model_version(session, "m")
        assert (prod.version, prod.alias, prod.epoch, prod.job_id) == (1, "prod", 1, 1)
        assert registry.resolve_model_version(session, "m", version=2).epoch == 2
        with pytest.raises(NotFound, match="alias 'staging'"):
            registry.resolve_model_version(session, "m", alias="staging")
        with pytest.raises(NotFound, match="model 'x'"):
            registry.resolve_model_version(session, "x")
        with pytest.raises(InvalidInput):
            registry.resolve_model_version(session, "m", alias="prod", version=1)


def test_a_version_whose_job_was_deleted_stays_listed_and_resolving_it_conflicts(
    session_factory: sessionmaker[Session],
) -> None:
    _model_with_versions(session_factory, 1)
    with session_factory() as session:
        job = jobs.get_job(session, 1)
        job.status = jobs.JobStatus.succeeded
        session.commit()
        jobs.delete_job(session, job)
        session.commit()
        version = registry.get_version(session, registry.get_model(session, "m"), 1)
        assert (version.job_id, version.source_job_id) == (None, 1)
        with pytest.raises(Conflict, match="deleted"):
            registry.resolve_model_version(session, "m", version=1)
