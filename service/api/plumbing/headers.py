"""Security headers on every answer: no MIME sniffing, no referrer, and HTML that cannot be framed elsewhere."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Pages that set their own Content-Security-Policy (the docs pages) keep it; other HTML gets this one.
FRAME_POLICY = "frame-ancestors 'none'"
ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
CSP = b"content-security-policy"


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` (raw, lower-case names) with the security headers it does not set itself."""
    names = {name.lower() for name, _ in headers}
    added = [pair for pair in ALWAYS if pair[0] not in names]
    if CSP not in names and any(n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers):
        added.append((CSP, FRAME_POLICY.encode()))
    return [*headers, *added]


class SecurityHeaders:
    """ASGI middleware adding X-Content-Type-Options and Referrer-Policy everywhere, and a frame-ancestors
    policy to HTML answers that have no Content-Security-Policy of their own (raw header lists, no objects:
    every answer passes here)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = secured(list(message.get("headers", ())))
            await send(message)

        await self.app(scope, receive, send_with_headers)
