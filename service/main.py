"""The FastAPI application factory: lifespan, routers and the one place errors become HTTP responses."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service import __version__
from service.api import optlab
from service.config import Settings, get_settings
from service.errors import ConvlabError


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the convlab app for `settings` (default: read from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        yield

    app = FastAPI(title="convlab", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.include_router(optlab.router)

    @app.exception_handler(ConvlabError)
    async def _domain_error(request: Request, exc: ConvlabError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})

    return app
