"""The dashboard: server-rendered pages over the JSON API (jobs, a job live, compare, the lab, architectures,
uploaded datasets, the model registry).

Pages are plain HTML tables that read without JavaScript; the vendored htmx refreshes the job list and small
scripts in service/static/web draw the charts and call the JSON API with the browser's session cookie.
"""

from fastapi import FastAPI

from service.web import pages, signin
from service.web.access import SignInRequired, redirect_to_sign_in


def install_web(app: FastAPI) -> None:
    """Add the dashboard's pages and its sign-in redirect to `app`."""
    app.include_router(pages.router)
    app.include_router(signin.router)
    app.add_exception_handler(SignInRequired, redirect_to_sign_in)
