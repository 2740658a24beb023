"""The serving lane: the hottest requests answered by plain ASGI code, beside FastAPI's routing, not around it.

FastAPI's per-request machinery (matching against every route, solving the dependency tree, building request and
response objects, its tracing check) cost a single-image predict about 250 of its 650-800 µs of CPU, more than the
image's decode and forward pass together (docs/benchmarks-serve.md). The lane answers these requests directly:

- `POST /jobs/{job_id}/predict` and `POST /models/{name}/predict` whose query strings hold only their own plain
  parameters, within bounds;
- `GET /version` and `GET /health/live`, whose answers never change.

Everything a route keeps, the lane keeps: it sits inside the request-id, metrics, security-header and body-limit
middlewares, sets the route in the scope (metrics are labelled by its template), runs the same scope check and
rate limit (`RequireScope`), the same body reading and prediction code, and turns errors into the same JSON as
the app's error handlers. Anything else, any unusual query string included, goes on to FastAPI, whose route
stays the documented operation and answers the request the same way (tests/api/test_lane.py compares them).

One thing the lane does first: while load shedding refuses (service/inference/shedding.py), a predict is refused
before its body is read and its token checked, with the 503 its route would give.
"""

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.plumbing.deps import MAX_EPOCH
from service.api.plumbing.handlers import error_response
from service.api.plumbing.routes import api_routes
from service.api.plumbing.security import PREDICT, bearer
from service.api.routers import predict, serving, system
from service.errors import Overloaded

Params = dict[str, int | str]
Answer = Callable[[Request, str, Params], Awaitable[Response]]
# A query parameter the lane reads itself: an integer within bounds, or a string of at most this many characters.
NAME_LENGTH = 64
INTEGERS = re.compile(rb"0|[1-9][0-9]{0,18}")
PLAIN = re.compile(rb"[A-Za-z0-9._~-]{1,%d}" % NAME_LENGTH)  # a string with nothing to percent-decode


@dataclass(frozen=True)
class LaneRoute:
    """A request the lane answers: method, path pattern (one group: the path parameter), the FastAPI route it
    stands for (its template labels the metrics), the query parameters it reads (integer bounds, or None for a
    short plain string) and its answer."""

    method: str
    path: re.Pattern[str]
    template: str
    params: dict[str, tuple[int, int] | None]
    answer: Answer
    guarded: bool = True  # whether it needs the predict scope and counts against the predict rate


def query_params(query: bytes, allowed: dict[str, tuple[int, int] | None]) -> Params | None:
    """The query string's parameters if every one is `allowed`, given once and plain (digits within bounds, or
    a short unescaped string); None when FastAPI should read it instead."""
    found: Params = {}
    for pair in query.split(b"&") if query else ():
        raw_name, _, value = pair.partition(b"=")
        name = raw_name.decode("latin-1")
        if name not in allowed or name in found:
            return None
        bounds = allowed[name]
        if bounds is None:
            if not PLAIN.fullmatch(value):
                return None
            found[name] = value.decode("ascii")
            continue
        if not INTEGERS.fullmatch(value) or not bounds[0] <= int(value) <= bounds[1]:
            return None
        found[name] = int(value)
    return found


async def _by_job(request: Request, job_id: str, params: Params) -> Response:
    checkpoint, top_k = params.get("checkpoint"), params.get("top_k", 3)
    assert (checkpoint is None or isinstance(checkpoint, int)) and isinstance(top_k, int)
    return await predict.answer(request, request.app.state.predictor, int(job_id), checkpoint, top_k)


async def _by_name(request: Request, name: str, params: Params) -> Response:
    alias, version, top_k = params.get("alias"), params.get("version"), params.get("top_k", 3)
    assert (alias is None or isinstance(alias, str)) and (version is None or isinstance(version, int))
    assert isinstance(top_k, int)
    return await serving.answer(request, request.app.state.predictor, name, alias, version, top_k)


async def _version(request: Request, _: str, params: Params) -> Response:
    return await system.version()


async def _live(request: Request, _: str, params: Params) -> Response:
    return await system.live()


TOP_K = (1, 1000)
ROUTES = (
    LaneRoute(
        "POST",
        re.compile(r"/jobs/([1-9][0-9]{0,17})/predict"),  # ids up to 10**18 - 1, well within MAX_ID
        "/jobs/{job_id}/predict",
        {"top_k": TOP_K, "checkpoint": (0, MAX_EPOCH)},
        _by_job,
    ),
    LaneRoute(
        "POST",
        re.compile(rf"/models/([^/]{{1,{NAME_LENGTH}}})/predict"),
        "/models/{name}/predict",
        {"top_k": TOP_K, "version": (1, MAX_EPOCH), "alias": None},
        _by_name,
    ),
    LaneRoute("GET", re.compile(r"/version()"), "/version", {}, _version, guarded=False),
    LaneRoute("GET", re.compile(r"/health/live()"), "/health/live", {}, _live, guarded=False),
)


class ServingLane:
    """ASGI middleware, the innermost: answers the lane's requests (ROUTES) itself, passes on everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, BaseRoute] | None = None  # FastAPI's routes by template, found on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._match(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        route, argument, params = found
        scope["route"] = self._route(scope["app"], route.template)
        if route.guarded and (refused := scope["app"].state.predictor.shedder.refusal()) is not None:
            await send_refusal(send, refused)
            return
        request = Request(scope, receive)
        try:
            if route.guarded:
                await _admit(request)
            response = await route.answer(request, argument, params)
        except Exception as exc:  # the app's own error answers, as its handlers would give them
            response = await error_response(request, exc)
        await response(scope, receive, send)

    @staticmethod
    def _match(scope: Scope) -> tuple[LaneRoute, str, Params] | None:
        for route in ROUTES:
            if scope["method"] == route.method and (matched := route.path.fullmatch(scope["path"])) is not None:
                params = query_params(scope["query_string"], route.params)
                return None if params is None else (route, matched[1], params)
        return None

    def _route(self, app: FastAPI, template: str) -> BaseRoute:
        if self._routes is None:
            self._routes = {route.path: route for route in api_routes(app)}
        return self._routes[template]


async def send_refusal(send: Send, refused: Overloaded) -> None:
    """Load shedding's 503, as the app's error handler words it, sent before anything else is done: the body is
    not read, the token not checked, no request object made. Under a flood most requests are refused, and each
    refusal's cost is taken from the requests being served (docs/benchmarks-serve.md, "Overload")."""
    body = json.dumps({"detail": refused.detail}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in refused.headers.items()]
    await send({"type": "http.response.start", "status": refused.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _admit(request: Request) -> None:
    """The predict routes' scope check and rate limit, as their FastAPI dependency runs them."""
    state = request.app.state
    await PREDICT(request, await bearer(request), state.settings, state.token_reads, state.guards)
