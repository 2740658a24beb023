"""Domain exceptions, each with the status code the HTTP edge (service/api/handlers.py) answers it with."""

import math
from collections.abc import Sequence
from typing import Any


class ConvlabError(Exception):
    """Base class: `detail` is the human-readable message sent to clients."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the JSON body."""
        return {}


class BadRequest(ConvlabError):
    """The request cannot be read at all (malformed JSON)."""

    status_code = 400


class UnsupportedMediaType(ConvlabError):
    status_code = 415


class Unauthorized(ConvlabError):
    """No token, or one that is unknown or revoked."""

    status_code = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(ConvlabError):
    """A valid token without the scope, or a job that belongs to another token."""

    status_code = 403


class RetryLater(ConvlabError):
    """A refusal that passes: `retry_after` (seconds) says when trying again can succeed (a Retry-After header)."""

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class TooManyRequests(RetryLater):
    """A quota or rate limit."""

    status_code = 429


class Overloaded(RetryLater):
    """More predict requests are waiting than can be served within the bounded wait (load shedding)."""

    status_code = 503


class NotFound(ConvlabError):
    status_code = 404


class Conflict(ConvlabError):
    status_code = 409


class InvalidInput(ConvlabError):
    status_code = 422


class PayloadTooLarge(ConvlabError):
    status_code = 413


class DatasetUnavailable(InvalidInput):
    """A dataset's files are missing and downloads are off."""


class CheckpointError(InvalidInput):
    """A checkpoint is corrupt, of another format, or does not fit the architecture."""


class LeaseLost(ConvlabError):
    """A worker tried to write for a job attempt it no longer owns."""

    status_code = 409


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """pydantic's errors as one line per problem, each naming the field (dotted path) and what is wrong with it."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        elif loc and loc[0] in ("query", "path", "header"):
            loc = [f"{loc[-1]} ({loc[0]} parameter)"] if len(loc) > 1 else loc
        field = ".".join(loc) or "body"
        parts.append(f"{field}: {error.get('msg', 'invalid value')}")
    return "; ".join(parts)
