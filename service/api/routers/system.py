"""Service health and version."""

import functools
import platform

import torch
from fastapi import APIRouter, Response

from service import __version__
from service.api.plumbing.deps import SessionDep, SettingsDep
from service.api.plumbing.handlers import DATABASE_RETRY_SECONDS, database_unavailable_detail
from service.api.wire.system import HealthRead, Probe, VersionRead
from service.storage import jobs
from service.storage.db import head_revision, low_disk_problem, schema_revision

router = APIRouter(tags=["system"])


@router.get(
    "/health",
    summary="Is the service healthy?",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "The database cannot be reached."}},
)
def health(session: SessionDep, settings: SettingsDep, response: Response) -> HealthRead:
    """Whether the database answers, and which workers sent a heartbeat recently (503 if the database is down)."""
    try:
        jobs.ping(session)
        workers = jobs.recent_workers(session, within_seconds=3 * settings.queue.lease_seconds)
    except Exception as exc:  # any driver error means "unreachable" here; it is reported, not raised
        _unavailable(response)
        return HealthRead(status="degraded", database=False, database_error=database_unavailable_detail(exc))
    listed = [
        {
            "id": w.id,
            "hostname": w.hostname,
            "pid": w.pid,
            "last_seen": w.last_seen.isoformat(),
            "current_job_id": w.current_job_id,
            "device": {
                "kind": w.device_kind,
                "name": w.device_name,
                "memory": w.device_memory,
                "count": w.device_count,
            },
        }
        for w in workers
    ]
    problem = low_disk_problem(settings.database_url)
    if problem is not None:
        response.status_code = 503  # reads still work (/health/ready stays 200), writes are about to fail
        return HealthRead(
            status="degraded", database=True, database_error=problem, workers=listed, workers_alive=len(listed)
        )
    return HealthRead(status="ok", database=True, workers=listed, workers_alive=len(listed))


def _unavailable(response: Response) -> None:
    response.status_code = 503
    response.headers["Retry-After"] = str(DATABASE_RETRY_SECONDS)


# The answers of the two routes that never change, serialized once: they are probed and scraped all day, and an
# `async def` returning bytes costs no thread-pool trip and no response-model validation.
LIVE = Probe(status="ok").model_dump_json().encode()


@functools.cache
def version_json() -> bytes:
    """GET /version's body (the same for the life of the process)."""
    found = VersionRead(version=__version__, python=platform.python_version(), torch=torch.__version__)
    return found.model_dump_json().encode()


@router.get("/health/live", summary="Is the process answering?", response_model=Probe)
async def live() -> Response:
    """Always 200 while the process serves requests (for an orchestrator's liveness probe)."""
    return Response(LIVE, media_type="application/json")


@router.get(
    "/health/ready",
    summary="Can this process serve requests?",
    response_model=Probe,
    responses={503: {"model": Probe, "description": "The database is unreachable or not migrated to head."}},
)
def ready(session: SessionDep, response: Response) -> Probe:
    """200 when the database answers and its schema is at the newest migration; 503 with the reason if not."""
    try:
        revision = schema_revision(session)
    except Exception as exc:  # any driver error means "not ready"; it is reported, not raised
        _unavailable(response)
        return Probe(status="unavailable", reason=database_unavailable_detail(exc))
    head = head_revision()
    if revision != head:
        response.status_code = 503
        return Probe(status="unavailable", reason=f"database schema at {revision or 'nothing'}, migrations at {head}")
    return Probe(status="ok")


@router.get("/version", summary="Version of convlab and its runtime", response_model=VersionRead)
async def version() -> Response:
    """convlab, Python and torch versions."""
    return Response(version_json(), media_type="application/json")
