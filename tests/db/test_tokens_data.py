"""API tokens in the database (SQLite file and PostgreSQL): hashes only, lookup, last use, revocation, bootstrap."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from service.access import Scope, hash_secret
from service.errors import Conflict, InvalidInput, NotFound
from service.jobspec.spec import JobRequest
from service.storage import jobs, tokens
from service.storage.bootstrap import BOOTSTRAP_NAME, SUPPLIED_NAME, ensure_admin
from service.storage.orm import ApiToken, Job

SPEC = JobRequest.model_validate({"architecture": "lenet", "dataset": "fashion_mnist", "epochs": 1}).resolve()


def test_only_the_hash_of_a_secret_is_stored(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        token, secret = tokens.create_token(session, name="alice", scopes=[Scope.jobs_read, Scope.lab])
        session.commit()
        row = session.execute(text("SELECT * FROM api_tokens")).mappings().one()
    assert secret.startswith("cvl_") and len(secret) == 4 + 43
    assert secret not in {str(value) for value in row.values()}
    assert row["secret_hash"] == hash_secret(secret) and row["hint"] == secret[:8]
    assert token.scopes == ["jobs:read", "lab"]


def test_two_tokens_never_share_a_secret(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        secrets = {tokens.create_token(session, name=f"t{i}", scopes=[Scope.lab])[1] for i in range(50)}
    assert len(secrets) == 50


def test_find_token_accepts_its_secret_only(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        token, secret = tokens.create_token(session, name="alice", scopes=[Scope.lab])
        session.commit()
        assert tokens.find_token(session, secret) is token
        assert tokens.find_token(session, secret[:-1]) is None
        assert tokens.find_token(session, secret + "x") is None
        assert tokens.find_token(session, "") is None


def test_last_use_is_written_at_most_once_a_minute(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        token, _ = tokens.create_token(session, name="alice", scopes=[Scope.lab])
        session.commit()
        assert token.last_used_at is None and tokens.is_use_stale(token)
        tokens.record_use(session, token.id)
        session.commit()
        session.refresh(token)
        stamp = token.last_used_at
        assert stamp is not None and not tokens.is_use_stale(token)
        tokens.record_use(session, token.id)  # within the minute: unchanged
        session.commit()
        session.refresh(token)
        assert token.last_used_at == stamp
        token.last_used_at = stamp - timedelta(minutes=2)
        session.commit()
        assert tokens.is_use_stale(token)
        tokens.record_use(session, token.id)
        session.commit()
        session.refresh(token)
        assert token.last_used_at is not None and token.last_used_at >= stamp


def test_names_are_unique_and_checked(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        tokens.create_token(session, name="alice", scopes=[Scope.lab])
        with pytest.raises(Conflict):
            tokens.create_token(session, name="alice", scopes=[Scope.admin])
        with pytest.raises(InvalidInput):
            tokens.create_token(session, name="-bad", scopes=[Scope.lab])
        with pytest.raises(InvalidInput):
            tokens.create_token(session, name="empty", scopes=[])


def test_revoked_token_is_refused_and_its_jobs_keep_the_owner_name(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        token, secret = tokens.create_token(session, name="alice", scopes=[Scope.jobs_write])
        owner = jobs.Owner(token_id=token.id, name=token.name, address="10.0.0.1")
        job_id = jobs.create_job(session, spec=SPEC, owner=owner).id
        session.commit()
        tokens.revoke_token(session, "alice")
        session.commit()
        assert tokens.find_token(session, secret) is None
        with pytest.raises(NotFound):
            tokens.revoke_token(session, "alice")
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.owner_token_id is None and job.owner_name == "alice"


def test_active_jobs_are_counted_per_token_or_address(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        token, _ = tokens.create_token(session, name="alice", scopes=[Scope.jobs_write])
        for owner in (
            jobs.Owner(token.id, "alice", "a"),
            jobs.Owner(token.id, "alice", "b"),
            jobs.Owner(None, None, "a"),
        ):
            jobs.create_job(session, spec=SPEC, owner=owner)
        jobs.request_cancel(session, session.scalars(select(Job).order_by(Job.id)).first())  # type: ignore[arg-type]
        assert jobs.count_active_jobs(session, owner_token_id=token.id, client_address="zzz") == 1
        assert jobs.count_active_jobs(session, owner_token_id=None, client_address="a") == 1


def test_bootstrap_makes_one_admin_token_once(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        secret = ensure_admin(session, supplied=None)
        session.commit()
        assert secret is not None
        token = tokens.find_token(session, secret)
        assert token is not None and token.name == BOOTSTRAP_NAME and token.scopes == ["admin"]
    with session_factory() as session:
        assert ensure_admin(session, supplied=None) is None  # an admin exists: nothing new to show
        session.commit()
        assert len(tokens.list_tokens(session)) == 1


def test_a_supplied_admin_token_is_installed_and_rotated(session_factory: sessionmaker[Session]) -> None:
    first, second = "s3cret-" + "a" * 32, "s3cret-" + "b" * 32
    with session_factory() as session:
        assert ensure_admin(session, supplied=first) is None
        session.commit()
    with session_factory() as session:
        ensure_admin(session, supplied=first)  # idempotent
        session.commit()
        ensure_admin(session, supplied=second)  # the deployment changed CONVLAB_ADMIN_TOKEN
        session.commit()
        assert tokens.find_token(session, first) is None
        found = tokens.find_token(session, second)
        assert found is not None and found.name == SUPPLIED_NAME and found.scopes == ["admin"]
        assert [t.name for t in session.scalars(select(ApiToken))] == [SUPPLIED_NAME]
