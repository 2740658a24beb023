"""Request-body size limits, enforced while the body streams in, before anything is parsed.

A declared Content-Length over the limit is refused before a byte is read; one within it needs no counting (the
server reads exactly that many bytes, and none when neither Content-Length nor Transfer-Encoding is sent, as
HTTP/1.1 says), so most requests pass straight through. A chunked body is counted as it arrives; at the limit
the app stops receiving, whatever it had begun to answer is dropped, and the client gets the 413 (JSON)
instead, so a 200 MB upload never sits whole in memory.

FastAPI 0.165 gained `max_body_size` (Starlette's RequestBodyLimitMiddleware); this stays because convlab
supports FastAPI from 0.140 and its 413 names the setting to change.
"""

import contextlib

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    """Raised inside receive() when the body passes the limit; caught by BodySizeLimit."""


class BodySizeLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, over `predict_max_bytes` on a predict route, or over
    `upload_max_bytes` on the dataset upload."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        predict_max_bytes: int,
        predict_suffix: str | tuple[str, ...] = ("/predict", "/explain"),  # explain takes predict's bodies
        upload_max_bytes: int | None = None,
        upload_path: str = "/datasets",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.predict_max_bytes = predict_max_bytes
        self.predict_suffix = predict_suffix
        self.upload_max_bytes = upload_max_bytes
        self.upload_path = upload_path

    def _limit(self, path: str) -> tuple[int, str]:
        if self.upload_max_bytes is not None and path == self.upload_path:  # dataset archives: their own limit
            return self.upload_max_bytes, "CONVLAB_DATASET_MAX_UPLOAD_BYTES"
        if path.endswith(self.predict_suffix) or (path.startswith("/v2/") and path.endswith("/infer")):
            return self.predict_max_bytes, "predict_max_bytes"
        return self.max_bytes, "max_body_bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit(str(scope.get("path", "")))
        declared, chunked = _framing(scope)
        if declared is not None and declared > limit:
            await _too_large(limit, setting)(scope, receive, send)
            return
        if not chunked:  # the server reads exactly Content-Length bytes (none without it): nothing to count
            await self.app(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a body it could not read; the 413 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            await _too_large(limit, setting)(scope, receive, send)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's declared Content-Length (None: none, or not a number) and whether its body is chunked."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            declared = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


def _too_large(limit: int, setting: str) -> JSONResponse:
    return JSONResponse({"detail": f"request body larger than the limit of {limit} bytes ({setting})"}, status_code=413)
