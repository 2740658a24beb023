"""Signing a browser in with an API token (kept in an HttpOnly cookie) and out again."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.api.plumbing.cookies import check_same_origin, end_session, start_session
from service.api.plumbing.deps import SessionFactoryDep, SettingsDep
from service.api.plumbing.security import GuardsDep, authenticate
from service.web.access import SIGN_IN_PATH
from service.web.templating import render

router = APIRouter(prefix="/ui", include_in_schema=False)
Next = Annotated[str, Query(max_length=2000)]


def safe_target(target: str) -> str:
    """`target` if it is a path on this server, else the jobs page (no open redirect)."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


@router.get("/signin")
def sign_in_page(request: Request, settings: SettingsDep, next: Next = "/") -> Response:
    """The sign-in form (a note instead when this server does not require tokens)."""
    return render(request, "signin.html", target=safe_target(next), required=settings.auth_required, error=None)


@router.post("/signin")
async def sign_in(
    request: Request,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    guards: GuardsDep,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the token and keep it in the browser's cookie; the form again with the reason if it is refused."""
    check_same_origin(request)
    address = request.client.host if request.client else "unknown"
    guards.logins.check(address)
    principal = await run_in_threadpool(authenticate, factory, token.strip(), address)
    if principal is None:
        guards.logins.record(address)
        error = "That token is unknown or was revoked."
        return render(request, "signin.html", status_code=401, target=safe_target(next), required=True, error=error)
    response = RedirectResponse(safe_target(next), status_code=303)
    start_session(request, response, token.strip())
    return response


@router.post("/signout")
def sign_out(request: Request) -> Response:
    """Forget the browser's token and show the sign-in form."""
    check_same_origin(request)
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    end_session(response)
    return response
