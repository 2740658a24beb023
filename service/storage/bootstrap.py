"""The first admin token: supplied by the deployment (CONVLAB_ADMIN_TOKEN) or made once and shown once."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.access.principal import Scope
from service.storage import tokens
from service.storage.db import begin_write
from service.storage.orm import ApiToken

BOOTSTRAP_NAME = "bootstrap-admin"
SUPPLIED_NAME = "admin-env"  # the token CONVLAB_ADMIN_TOKEN names


def ensure_admin(session: Session, *, supplied: str | None) -> str | None:
    """Make sure an admin can sign in: install the supplied token, or make a bootstrap one if no admin exists.

    Returns the secret of a newly made bootstrap token (to be shown once), else None. Runs in one write
    transaction, so API processes starting together make at most one; the caller commits.
    """
    begin_write(session)
    if supplied is not None:
        _install(session, supplied)
        return None
    if tokens.has_admin_token(session):
        return None
    _, secret = tokens.create_token(session, name=BOOTSTRAP_NAME, scopes=[Scope.admin])
    return secret


def _install(session: Session, supplied: str) -> None:
    existing = tokens.find_token(session, supplied)
    if existing is not None:
        if Scope.admin.value not in existing.scopes:
            existing.scopes = sorted({*existing.scopes, Scope.admin.value})
        return
    stale = session.scalar(select(ApiToken).where(ApiToken.name == SUPPLIED_NAME))
    if stale is not None:  # CONVLAB_ADMIN_TOKEN changed: the old value stops working (rotation)
        session.delete(stale)
        session.flush()
    tokens.create_token(session, name=SUPPLIED_NAME, scopes=[Scope.admin], secret=supplied)
