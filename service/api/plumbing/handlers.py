"""The one place where errors become HTTP responses: every error body is JSON with a readable `detail`."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.plumbing.routes import allowed_methods
from service.errors import ConvlabError, describe_validation_errors

log = logging.getLogger("convlab.api")
DATABASE_RETRY_SECONDS = 5  # Retry-After of a 503 while the database cannot be reached
# What a database that is down, unreachable, out of disk or out of connections raises (never a bug of ours):
# OperationalError (refused connection, lost server, unopenable file, disk full, locked), InterfaceError (a closed
# connection) and the pool's TimeoutError (no connection within its timeout).
DATABASE_OUTAGES = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


OIP_PREFIX = "/v2"


def speaks_oip(path: str) -> bool:
    """Whether `path` is one of the Open Inference Protocol's, whose errors are `{"error": ...}`."""
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


def _error_json(request: Request, status: int, detail: str, **extra: Any) -> JSONResponse:
    """`{"detail": ...}`, or the Open Inference Protocol's `{"error": ...}` on its /v2 paths."""
    if speaks_oip(request.url.path):
        return JSONResponse(status_code=status, content={"error": detail}, headers=extra.get("headers"))
    return JSONResponse(
        status_code=status, content={"detail": detail, **extra.get("body", {})}, headers=extra.get("headers")
    )


def _is_malformed_json(errors: Sequence[Any]) -> bool:
    return any(error.get("type") == "json_invalid" for error in errors)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConvlabError)
    return _error_json(request, exc.status_code, exc.detail, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if _is_malformed_json(errors):
        ctx = errors[0].get("ctx") or {}
        detail = f"malformed JSON body: {ctx.get('error', 'could not be parsed')}"
        return _error_json(request, 400, detail)
    simple = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return _error_json(request, 422, describe_validation_errors(errors), body={"errors": simple})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) as JSON; a 405 lists every method the path allows."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
    return _error_json(request, exc.status_code, str(exc.detail), headers=headers)


def database_unavailable_detail(exc: BaseException) -> str:
    """The `detail` of a 503 for `exc`: it names the database and the driver's first line, without the SQL."""
    original = getattr(exc, "orig", None) or exc
    first = (str(original).strip().splitlines() or [type(original).__name__])[0]
    return f"database unavailable: {first}"


async def _database_outage(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return JSONResponse(
        status_code=503,
        content={"detail": database_unavailable_detail(exc)},
        headers={"Retry-After": str(DATABASE_RETRY_SECONDS)},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_json(request, 500, "internal server error")


# What handler answers a raised error, most specific first: one table for the app and for the serving lane.
RAISED: tuple[tuple[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse]]], ...] = (
    (ConvlabError, _domain_error),
    *((outage, _database_outage) for outage in DATABASE_OUTAGES),
    (Exception, _unexpected_error),
)


async def error_response(request: Request, exc: Exception) -> JSONResponse:
    """What the handlers installed below answer for `exc`, for code that runs outside FastAPI's routing (the
    serving lane, service/api/plumbing/lane.py)."""
    handler = next(handler for kind, handler in RAISED if isinstance(exc, kind))
    return await handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain exceptions, request validation errors and unexpected errors to JSON responses."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind, handler in RAISED:
        app.add_exception_handler(kind, handler)
