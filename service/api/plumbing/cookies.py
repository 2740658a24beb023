"""The browser's session: the API token in an HttpOnly cookie, and the double-submit check against forgery.

The dashboard signs in by storing the token in `convlab_token` (HttpOnly, SameSite=Strict, Secure over https),
so page scripts never see it. A request authenticated by that cookie that changes state must also come from
this origin (Origin, when sent) and echo the `convlab_csrf` cookie in the X-CSRF-Token header: a cross-site
page can make the browser send the cookies but can neither read nor forge the header.
"""

import hmac
import secrets

from fastapi import Request, Response

from service.errors import Forbidden

TOKEN_COOKIE = "convlab_token"
CSRF_COOKIE = "convlab_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_SECONDS = 12 * 3600


def own_origin(request: Request) -> str:
    """This server's origin as the browser sees it (scheme, host and port)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def check_same_origin(request: Request) -> None:
    """Refuse a request whose Origin header names another site (403)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        raise Forbidden(f"cross-site request refused: Origin {origin!r} is not this server")


def check_csrf(request: Request) -> None:
    """Refuse a cookie-authenticated state change that is cross-site or lacks the double-submitted token (403)."""
    check_same_origin(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise Forbidden(f"cross-site request refused: send the {CSRF_COOKIE} cookie's value in {CSRF_HEADER}")


def cookie_secret(request: Request) -> str | None:
    """The token of a signed-in browser; for a state change, only after the forgery check passed."""
    secret = request.cookies.get(TOKEN_COOKIE)
    if secret and request.method not in SAFE_METHODS:
        check_csrf(request)
    return secret or None


def start_session(request: Request, response: Response, secret: str) -> None:
    """Set the token cookie (HttpOnly) and a fresh forgery-check cookie (readable by the page's scripts)."""
    secure = request.url.scheme == "https"
    for name, value, httponly in ((TOKEN_COOKIE, secret, True), (CSRF_COOKIE, secrets.token_urlsafe(32), False)):
        response.set_cookie(
            name, value, max_age=SESSION_SECONDS, path="/", secure=secure, httponly=httponly, samesite="strict"
        )


def end_session(response: Response) -> None:
    """Forget the browser's token."""
    for name in (TOKEN_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", samesite="strict")
