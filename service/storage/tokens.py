"""Data functions for API tokens. They add and flush; the caller owns the session and commits.

A token's secret is never stored: only its SHA-256, looked up by that hash and then compared with
`hmac.compare_digest`, so the final comparison takes the same time whatever the bytes.
"""

import hmac
import re
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.access.principal import Scope
from service.access.secrets import hash_secret, hint, new_secret
from service.errors import Conflict, InvalidInput, NotFound
from service.storage.db import utcnow
from service.storage.orm import ApiToken

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LAST_USED_RESOLUTION = timedelta(seconds=60)  # `last_used_at` is written at most once a minute per token


def create_token(
    session: Session,
    *,
    name: str,
    scopes: Iterable[Scope],
    secret: str | None = None,
    predict_rate: float | None = None,
) -> tuple[ApiToken, str]:
    """A new token named `name` with `scopes` (and a predict rate of its own), and its secret (shown once; only
    its hash is kept)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(f"token name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
    wanted = sorted({Scope(s) for s in scopes})
    if not wanted:
        raise InvalidInput("a token needs at least one scope: " + ", ".join(s.value for s in Scope))
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"a token named {name!r} exists; revoke it first or choose another name")
    secret = secret or new_secret()
    token = ApiToken(name=name, secret_hash=hash_secret(secret), hint=hint(secret), scopes=[s.value for s in wanted])
    token.predict_rate = _rate(predict_rate)
    token.created_at = utcnow()
    session.add(token)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name, or a reused secret
        raise Conflict(f"token {name!r} could not be created: its name or secret is already in use") from exc
    return token, secret


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, oldest first (no secrets: only hashes are stored)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def get_token(session: Session, name: str) -> ApiToken:
    """The token named `name`; NotFound if there is none."""
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"no token named {name!r}")
    return token


def set_predict_rate(session: Session, name: str, rate: float | None) -> ApiToken:
    """Give token `name` a predict rate of its own (requests per second, 0: none), or None: the server's."""
    token = get_token(session, name)
    token.predict_rate = _rate(rate)
    session.flush()
    return token


def _rate(rate: float | None) -> float | None:
    if rate is not None and not (0 <= rate < float("inf")):
        raise InvalidInput(f"predict_rate: {rate} is not a rate; give requests per second, 0 for no limit")
    return rate


def revoke_token(session: Session, name: str) -> None:
    """Delete token `name`: the next request that presents it is refused. Its jobs stay, owned by no token."""
    session.delete(get_token(session, name))
    session.flush()


def find_token(session: Session, secret: str) -> ApiToken | None:
    """The token whose secret is `secret`, or None (a read only; see `record_use`)."""
    digest = hash_secret(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.secret_hash == digest))
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        return None
    return token


def is_use_stale(token: ApiToken) -> bool:
    """Whether `last_used_at` is older than its resolution, so that this use should be written."""
    return token.last_used_at is None or utcnow() - token.last_used_at >= LAST_USED_RESOLUTION


def record_use(session: Session, token_id: int) -> None:
    """Set `last_used_at` of a token to now, unless another request did within the resolution.

    One conditional UPDATE: run it in a write transaction of its own (`begin_write`), never after reads in the
    same SQLite transaction, which could not be upgraded to a write once another writer had committed.
    """
    now = utcnow()
    stale = or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - LAST_USED_RESOLUTION)
    session.execute(update(ApiToken).where(ApiToken.id == token_id, stale).values(last_used_at=now))


def has_admin_token(session: Session) -> bool:
    """Whether any token holds the admin scope."""
    return any(Scope.admin.value in token.scopes for token in session.scalars(select(ApiToken)))
