"""Offline API documentation: Swagger UI and ReDoc pages built from the vendored assets in service/static."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"  # service/static
STATIC_PREFIX = "/static"

router = APIRouter(include_in_schema=False)

# The pages may load and call only this server: a browser then makes no request elsewhere, even for the
# "powered by" logo that ReDoc's bundle would fetch from its CDN. Inline scripts start the UIs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'self'"
)


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def static_files() -> StaticFiles:
    """The app mounted at /static that serves the vendored Swagger UI and ReDoc files."""
    return StaticFiles(directory=STATIC_DIR)


def _openapi_url(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + str(request.app.openapi_url)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Interactive documentation (Swagger UI), served entirely by convlab."""
    root = str(request.scope.get("root_path", ""))
    return _offline(
        get_swagger_ui_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            # The default validator badge would call validator.swagger.io; keep the page offline.
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
        )
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect helper page."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """Reference documentation (ReDoc), served entirely by convlab."""
    root = str(request.scope.get("root_path", ""))
    return _offline(
        get_redoc_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PREFIX}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
    )
