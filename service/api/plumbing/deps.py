"""Dependencies of the HTTP handlers: settings, database sessions, loaded jobs, the prediction service.

The only reader of `app.state`, which the lifespan in service/main.py fills. The getters are `async def`: they
only read attributes, and a plain `def` dependency would cost each request a trip to the thread pool.
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session, sessionmaker

from service.access import Principal
from service.access.limits import Guards
from service.config import Settings
from service.inference import Predictor
from service.inference.explainer import Explainer
from service.inference.shared_reads import SharedReads
from service.storage import jobs
from service.storage.orm import Job
from service.telemetry.metrics import Metrics


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    """The session factory created by the lifespan."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request, closed as soon as the handler returns (uncommitted work is rolled back)."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        yield session


async def get_guards(request: Request) -> Guards:
    """This API process's rate limiters, login lockouts and lab compute slots."""
    guards: Guards = request.app.state.guards
    return guards


TokenReads = SharedReads[str, Principal | None]  # token secret -> its holder (no address), None if unknown


async def get_token_reads(request: Request) -> TokenReads:
    """The API token lookups, shared by concurrent requests with the same token, created by the lifespan."""
    reads: TokenReads = request.app.state.token_reads
    return reads


async def get_predictor(request: Request) -> Predictor:
    """The prediction service (model cache, batchers) created by the lifespan."""
    predictor: Predictor = request.app.state.predictor
    return predictor


async def get_explainer(request: Request) -> Explainer:
    """The explanation service (beside the predictor, sharing its cache and threads) created by the lifespan."""
    explainer: Explainer = request.app.state.explainer
    return explainer


async def get_metrics(request: Request) -> Metrics:
    """This API process's Prometheus registry."""
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
TokenReadsDep = Annotated[TokenReads, Depends(get_token_reads)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
ExplainerDep = Annotated[Explainer, Depends(get_explainer)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
# Ids are 64-bit and epochs 32-bit columns: larger numbers in a URL would overflow the driver (a 500), not 404.
MAX_ID = 2**63 - 1
MAX_EPOCH = 2**31 - 1
JobIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id.", examples=[1])]


def load_job(job_id: JobIdPath, session: SessionDep) -> Job:
    """The job named in the path; 404 if there is none."""
    return jobs.get_job(session, job_id)


def require_job(job_id: JobIdPath, factory: SessionFactoryDep) -> int:
    """The id of an existing job (404 otherwise), checked with a session that is closed at once."""
    with factory() as session:
        return jobs.get_job(session, job_id).id


JobDep = Annotated[Job, Depends(load_job)]
ExistingJobId = Annotated[int, Depends(require_job)]
