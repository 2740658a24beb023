"""Security headers on every answer: no MIME sniffing, no referrer, and HTML that cannot be framed elsewhere."""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Pages that set their own Content-Security-Policy (the docs pages) keep it; other HTML gets this one.
FRAME_POLICY = "frame-ancestors 'none'"


class SecurityHeaders:
    """ASGI middleware adding X-Content-Type-Options and Referrer-Policy everywhere, and a frame-ancestors
    policy to HTML answers that have no Content-Security-Policy of their own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", FRAME_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
