"""Data functions for API tokens. They add and flush; the caller owns the session and commits.

A token's secret is never stored: only its SHA-256, looked up by that hash and then compared with
`hmac.compare_digest`, so the final comparison takes the same time whatever the bytes.
"""

import hmac
import re
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select
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
    session: Session, *, name: str, scopes: Iterable[Scope], secret: str | None = None
) -> tuple[ApiToken, str]:
    """A new token named `name` with `scopes`, and its secret (shown once; only its hash is kept)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(f"token name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
    wanted = sorted({Scope(s) for s in scopes})
    if not wanted:
        raise InvalidInput("a token needs at least one scope: " + ", ".join(s.value for s in Scope))
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"a token named {name!r} exists; revoke it first or choose another name")
    secret = secret or new_secret()
    token = ApiToken(name=name, secret_hash=hash_secret(secret), hint=hint(secret), scopes=[s.value for s in wanted])
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


def revoke_token(session: Session, name: str) -> None:
    """Delete token `name`: the next request that presents it is refused. Its jobs stay, owned by no token."""
    session.delete(get_token(session, name))
    session.flush()


def find_token(session: Session, secret: str) -> ApiToken | None:
    """The token whose secret is `secret`, or None; notes when it was used (at most once a minute)."""
    digest = hash_secret(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.secret_hash == digest))
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.flush()
    return token


def has_admin_token(session: Session) -> bool:
    """Whether any token holds the admin scope."""
    return any(Scope.admin.value in token.scopes for token in session.scalars(select(ApiToken)))
