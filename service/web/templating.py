"""The Jinja2 environment of the pages, and the policy that keeps a page on this server."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from service import __version__
from service.api.plumbing.cookies import CSRF_COOKIE, CSRF_HEADER
from service.jobspec.status import JobStatus

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
TEMPLATES.env.globals["JobStatus"] = JobStatus  # templates compare with the enum and print its values
TEMPLATES.env.globals["FINAL_STATUSES"] = ",".join(s.value for s in JobStatus if s.finished)  # for job.js

# Scripts and data only from this server: no inline script runs, and the browser may call nothing else.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template `name` rendered for `request`, with the page policy."""
    context |= {"version": __version__, "csrf_cookie": CSRF_COOKIE, "csrf_header": CSRF_HEADER}
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # Not no-referrer (the API's default): under it a browser sends `Origin: null` even to this server, and the
    # forgery check (service/api/cookies.py) could not tell the page's own requests from a sandboxed attacker's.
    response.headers["Referrer-Policy"] = "same-origin"
    return response
