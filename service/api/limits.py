"""Request-body size limits enforced while the body streams in, before anything is parsed."""

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge


class BodySizeLimit:
    """ASGI middleware: answer 413 (JSON) when a request to a path ending in `suffix` exceeds `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, suffix: str = "/predict") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.suffix = suffix

    def _detail(self) -> str:
        return f"request body larger than the limit of {self.max_bytes} bytes (predict_max_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).endswith(self.suffix):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self._detail()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self._detail())
            return message

        await self.app(scope, limited_receive, send)
