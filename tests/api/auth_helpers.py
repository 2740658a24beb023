"""Helpers for the access-control tests: apps with auth required, and tokens made in their database."""

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route

from service.access import Scope
from service.api.plumbing.routes import all_routes
from service.api.plumbing.security import PUBLIC_PATHS, RequireScope
from service.config import AccessSettings, AuthMode, Settings
from service.storage import tokens
from tests.api.conftest import make_settings

T = TypeVar("T")


def required_settings(state_dir: Path, data_dir: Path, **access: object) -> Settings:
    """Settings with CONVLAB_AUTH=required and no rate limits unless `access` sets them."""
    values: dict[str, object] = {"auth": AuthMode.required, "predict_rate": 0, "lab_rate": 0, **access}
    return make_settings(state_dir, data_dir, access=AccessSettings.model_validate(values))


def issue_token(app: FastAPI, name: str, *scopes: Scope) -> str:
    """Make a token in the app's database (as `convlab token create` does) and return its secret."""
    with app.state.session_factory() as session:
        _, secret = tokens.create_token(session, name=name, scopes=scopes)
        session.commit()
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def required_scope(route: APIRoute) -> Scope | None:
    """The scope a route's dependencies require (through its router or its own parameters), if any."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, RequireScope):
            return dependant.call.scope
        pending.extend(dependant.dependencies)
    return None


def undecided_routes(app: FastAPI) -> list[str]:
    """Routes that neither require a scope nor are listed as public."""
    undecided = []
    for route in all_routes(app):
        path = _path(route)
        if isinstance(route, APIRoute) and required_scope(route) is not None:
            continue
        if path not in PUBLIC_PATHS:
            undecided.append(path)
    return undecided


def _path(route: BaseRoute) -> str:
    if isinstance(route, Mount | Route):
        return route.path
    return repr(route)


def run_together(work: Callable[[T], object], items: Iterable[T]) -> None:
    """Call `work` on every item from its own thread at once; an exception in any of them fails the caller."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()
