"""Request ids and request metrics: every answer echoes an `X-Request-ID` (the client's, if sane, or a new one)
that the request's log lines carry, and is counted by route template, method and status."""

import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.telemetry.logs import request_id
from service.telemetry.metrics import Metrics

# A client's id is kept only if it cannot break a log line or a header: short, printable, no spaces.
SANE_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


class RequestObserver:
    """ASGI middleware: the request id (context variable and response header) and the HTTP metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", "")) or "unmatched"
            seconds = time.perf_counter() - start
            self.metrics.observe_request(route=template, method=scope["method"], status=status, seconds=seconds)
            request_id.reset(token)
