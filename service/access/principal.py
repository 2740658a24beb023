"""Scopes, and the caller a request acts for."""

import enum
from dataclasses import dataclass


class Scope(enum.StrEnum):
    """What a token may do; `admin` implies every other scope."""

    jobs_read = "jobs:read"
    jobs_write = "jobs:write"
    predict = "predict"
    lab = "lab"
    metrics = "metrics"
    models_read = "models:read"
    models_write = "models:write"
    admin = "admin"
    datasets_read = "datasets:read"
    datasets_write = "datasets:write"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token (id, name, scopes) or, with auth off, an anonymous client with every scope."""

    address: str
    scopes: frozenset[Scope]
    token_id: int | None = None
    token_name: str | None = None
    predict_rate: float | None = None  # the token's own predict rate (requests/s; 0: none); None: the server's

    @property
    def key(self) -> str:
        """The key quotas and rates are counted under: the token, or the client's address with auth off."""
        return f"token:{self.token_id}" if self.token_id is not None else f"address:{self.address}"

    @property
    def is_admin(self) -> bool:
        """Whether this caller may do anything, including to other tokens' jobs."""
        return Scope.admin in self.scopes

    def allows(self, scope: Scope) -> bool:
        """Whether this caller holds `scope` (directly or through `admin`)."""
        return self.is_admin or scope in self.scopes

    def may_change(self, owner_token_id: int | None) -> bool:
        """Whether this caller may cancel or delete a job owned by `owner_token_id` (admins: any job)."""
        return self.is_admin or self.token_id is None or owner_token_id == self.token_id
