"""The FastAPI application factory: lifespan, routers and the one place errors become HTTP responses."""

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TypedDict

import torch
from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.access.limits import Guards
from service.api.plumbing import docs
from service.api.plumbing.handlers import install_error_handlers
from service.api.plumbing.headers import SecurityHeaders
from service.api.plumbing.lane import ServingLane
from service.api.plumbing.limits import BodySizeLimit
from service.api.plumbing.observe import RequestObserver
from service.api.plumbing.openapi import convlab_openapi
from service.api.plumbing.security import token_reads
from service.api.plumbing.uploads import clear_uploads
from service.api.routers import (
    architectures,
    checkpoints,
    clone,
    compare,
    datasets,
    events,
    explain,
    export,
    history,
    jobs,
    metrics,
    models,
    oip,
    optlab,
    predict,
    serving,
    sweeps,
    system,
    tokens,
)
from service.config import Settings, get_settings
from service.inference import Predictor
from service.inference.explainer import Explainer
from service.optlab import lab
from service.storage.db import make_engine, make_session_factory, upgrade_database
from service.telemetry.database import DatabaseCollector
from service.telemetry.metrics import Metrics
from service.web import install_web

DESCRIPTION = """
Train, track and serve the CNNs of *Dive into Deep Learning* (LeNet, BN-LeNet, ResNet-18, DenseNet) and compute
the optimization chapter's algorithms.

Submit a job with `POST /jobs`, follow it live with `GET /jobs/{id}/events` (Server-Sent Events), read its
history and plots, download its safetensors checkpoints and classify images with `POST /jobs/{id}/predict`.
Every error answer is JSON with a human-readable `detail`.

When authentication is on, send an API token as `Authorization: Bearer <token>` (the Authorize button below);
`docs/security.md` lists the scope each operation needs.
"""

TAGS = [
    {"name": "jobs", "description": "Queue, inspect, cancel and delete training jobs."},
    {"name": "history", "description": "Loss and accuracy curves of a job, as JSON, PNG or SVG; live events."},
    {"name": "checkpoints", "description": "The safetensors snapshots a job kept."},
    {"name": "export", "description": "A checkpoint as a verified ONNX file, with its model card."},
    {"name": "predict", "description": "Classify images with a trained job's model."},
    {"name": "architectures", "description": "The trainable CNNs and their layer tables."},
    {"name": "system", "description": "Health and version."},
    {"name": "models", "description": "The model registry: named models, versions, aliases; predict by name."},
    {"name": "inference protocol", "description": "The Open Inference Protocol (V2 REST) over registered models."},
    {"name": "tokens", "description": "API tokens and their scopes (admin only)."},
    {"name": "datasets", "description": "Your own image datasets: upload ImageFolder archives, versions, samples."},
    {"name": "sweeps", "description": "Hyper-parameter searches whose trials are ordinary jobs; comparisons; clones."},
    {
        "name": "optimization lab",
        "description": "Optimizer trajectories, convexity and stationary points, constrained problems, and the "
        "linear-regression optimizer comparison, on functions written in a safe expression language.",
    },
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the convlab app for `settings` (default: read from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="convlab",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=partial(lifespan, settings=settings),
        docs_url=None,  # served by service.api.plumbing.docs from vendored assets, so they work offline
        redoc_url=None,
    )
    app.openapi = partial(convlab_openapi, app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.guards = Guards.from_settings(settings.access)
    app.state.metrics = Metrics()
    # The hot routes first: a request is matched against the routes in this order, one by one (FastAPI 0.165
    # walks every route of every earlier router), which cost predict by name a fifth of its CPU when it came last.
    # Each of the first four answers paths no later router has; serving stays ahead of models.
    routers = (
        *(serving, predict, oip, system),
        *(jobs, history, events, checkpoints, architectures, metrics, docs, optlab, tokens),
        *(sweeps, compare, clone, export, datasets, explain, models),
    )
    for module in routers:
        app.include_router(module.router)
    install_web(app)
    app.mount(docs.STATIC_PREFIX, docs.static_files(), name="static")
    install_middleware(app, settings)
    install_error_handlers(app)
    return app


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """The layers every request passes, innermost first (each one added wraps those before it)."""
    app.add_middleware(ServingLane)  # the hottest requests, answered beside FastAPI's routing
    app.add_middleware(BodySizeLimit, **body_limits(settings))
    if settings.access.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.access.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestObserver, metrics=app.state.metrics)  # outermost: sees every answer, even a 413


class BodyLimits(TypedDict):
    max_bytes: int
    predict_max_bytes: int
    upload_max_bytes: int


def body_limits(settings: Settings) -> BodyLimits:
    """The request-body limits: the general one, predict's, and the dataset upload's."""
    return BodyLimits(
        max_bytes=settings.access.max_body_bytes,
        predict_max_bytes=settings.serving.predict_max_bytes,
        upload_max_bytes=settings.uploads.max_upload_bytes,
    )


@asynccontextmanager
async def lifespan(app: FastAPI, *, settings: Settings) -> AsyncIterator[None]:
    """Migrate, then build what requests share (engine, sessions, the prediction service); release it at exit."""
    if settings.serving.inference_threads:
        # Process-wide; the API process does not train (workers are separate processes).
        torch.set_num_threads(settings.serving.inference_threads)
    engine = make_engine(
        settings.database_url,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        lock_timeout_ms=settings.db_lock_timeout_ms,
    )
    if settings.migrate_on_start:
        await to_thread.run_sync(upgrade_database, settings.database_url)
    await to_thread.run_sync(clear_uploads, settings.state_dir)  # what uploads cut off by a kill -9 left
    await to_thread.run_sync(lab.warm_up)
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.token_reads = token_reads(app.state.session_factory)
    observed: Metrics = app.state.metrics
    collector = DatabaseCollector(app.state.session_factory, worker_alive_seconds=3 * settings.queue.lease_seconds)
    observed.registry.register(collector)
    app.state.predictor = Predictor(
        app.state.session_factory,
        settings.serving,
        device=settings.device,
        observer=observed,
        data_dir=settings.data_dir,
    )
    app.state.explainer = Explainer(app.state.predictor, settings.serving)
    try:
        with frozen_heap():
            try:
                yield
            finally:  # loads and exports in flight end first: each freezes what it left (freeze_survivors)
                await app.state.predictor.aclose()
    finally:
        observed.registry.unregister(collector)
        await app.state.token_reads.aclose()
        engine.dispose()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """What is alive on entry (the imported libraries, the app) out of the garbage collector's sight until exit.

    It lives as long as the process, and a full collection walked all of it: 220-240 ms, every few seconds under
    load, which was the whole of predict's p99 at 32 connections (docs/benchmarks-serve.md, "The serving lane, the
    garbage collector and batching").
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # collectable again once the app is gone (tests build many apps in one process)
