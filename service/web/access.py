"""Who may see a page: the API's scopes, with a browser sent to the sign-in page instead of a JSON 401."""

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from service.access import Scope
from service.api.plumbing.security import RequireScope
from service.errors import Unauthorized

SIGN_IN_PATH = "/ui/signin"


class SignInRequired(Exception):
    """A browser asked for a page without a valid session; `target` is where to return after signing in."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def wants_html(request: Request) -> bool:
    """The caller is a browser navigating (it accepts HTML), not an API client."""
    return "text/html" in request.headers.get("accept", "")


class PageScope(RequireScope):
    """RequireScope for a page: a browser without a session is redirected to sign in; other callers get 401."""

    def refusal(self, request: Request, refused: Unauthorized) -> Exception:
        """A browser goes to the sign-in page (and back here afterwards); an API client gets the 401."""
        if wants_html(request):
            return SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return refused


async def redirect_to_sign_in(request: Request, exc: Exception) -> Response:
    """303 to the sign-in page, which returns to the page asked for."""
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(exc.target, safe='')}", status_code=303)


PAGE_JOBS_READ = PageScope(Scope.jobs_read)
PAGE_JOBS_WRITE = PageScope(Scope.jobs_write)
PAGE_LAB = PageScope(Scope.lab)
PAGE_DATASETS_READ = PageScope(Scope.datasets_read)
PAGE_MODELS_READ = PageScope(Scope.models_read)
