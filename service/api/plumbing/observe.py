"""Request ids and request metrics: every answer echoes an `X-Request-ID` (the client's, if sane, or a new one)
that the request's log lines carry, and is counted by route template, method and status.

Every request of every route passes here, so it does the least it can: raw header lists are read and appended
to directly (no header objects), and a new id is this process's random prefix and a counter (unique without a
call to the system's random source per request).
"""

import itertools
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.telemetry.logs import request_id
from service.telemetry.metrics import Metrics

# A client's id is kept only if it cannot break a log line or a header: short, printable, no spaces.
SANE_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


def client_id(scope: Scope) -> str | None:
    """The request's own X-Request-ID if it has a sane one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("ascii") if SANE_ID.fullmatch(value) else None
    return None


class RequestObserver:
    """ASGI middleware: the request id (context variable and response header) and the HTTP metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.prefix = secrets.token_hex(8)  # 64 random bits per process, then a count
        self.count = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = client_id(scope) or f"{self.prefix}{next(self.count):016x}"
        header = (b"x-request-id", rid.encode("ascii"))
        token = request_id.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", "")) or "unmatched"
            seconds = time.perf_counter() - start
            self.metrics.observe_request(route=template, method=scope["method"], status=status, seconds=seconds)
            request_id.reset(token)
