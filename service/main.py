"""The FastAPI application factory: lifespan, routers and the one place errors become HTTP responses."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI

from service import __version__
from service.api import architectures, checkpoints, docs, events, history, jobs, optlab, predict, system
from service.api.handlers import install_error_handlers
from service.api.limits import BodySizeLimit
from service.config import Settings, get_settings
from service.db import make_engine, make_session_factory, upgrade_database
from service.inference import BatcherPool, ModelCache

DESCRIPTION = """
Train, track and serve the CNNs of *Dive into Deep Learning* (LeNet, BN-LeNet, ResNet-18, DenseNet) and compute
the optimization chapter's algorithms.

Submit a job with `POST /jobs`, follow it live with `GET /jobs/{id}/events` (Server-Sent Events), read its
history and plots, download its safetensors checkpoints and classify images with `POST /jobs/{id}/predict`.
Every error answer is JSON with a human-readable `detail`.
"""

TAGS = [
    {"name": "jobs", "description": "Queue, inspect, cancel and delete training jobs."},
    {"name": "history", "description": "Loss and accuracy curves of a job, as JSON, PNG or SVG; live events."},
    {"name": "checkpoints", "description": "The safetensors snapshots a job kept."},
    {"name": "predict", "description": "Classify images with a trained job's model."},
    {"name": "architectures", "description": "The trainable CNNs and their layer tables."},
    {"name": "system", "description": "Health and version."},
    {
        "name": "optimization lab",
        "description": "Optimizer trajectories, convexity and stationary points, constrained problems, and the "
        "linear-regression optimizer comparison, on functions written in a safe expression language.",
    },
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the convlab app for `settings` (default: read from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.inference_threads:
            # Process-wide; the API process does not train (workers are separate processes).
            torch.set_num_threads(settings.inference_threads)
        engine = make_engine(settings.database_url)
        if settings.migrate_on_start:
            await to_thread.run_sync(upgrade_database, settings.database_url)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.model_cache = ModelCache(settings.model_cache_size)
        # Few threads do CPU work for predictions at a time: with dozens, they and the event loop fight for
        # the GIL and tail latency explodes. Waiting requests queue cheaply on the event loop instead.
        app.state.predict_limiter = CapacityLimiter(settings.predict_threads or max(2, os.cpu_count() or 2))
        app.state.batchers = BatcherPool(
            max_batch=settings.predict_batch_max_size,
            max_delay_s=settings.predict_batch_max_delay_ms / 1000,
            limiter=app.state.predict_limiter,
        )
        try:
            yield
        finally:
            await app.state.batchers.aclose()
            engine.dispose()

    app = FastAPI(
        title="convlab",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # served by service.api.docs from vendored assets, so they work offline
        redoc_url=None,
    )
    app.state.settings = settings
    for module in (jobs, history, events, checkpoints, predict, architectures, system, docs, optlab):
        app.include_router(module.router)
    app.mount(docs.STATIC_PREFIX, docs.static_files(), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=settings.predict_max_bytes)
    install_error_handlers(app)
    return app
