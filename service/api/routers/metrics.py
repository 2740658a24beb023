"""GET /metrics: Prometheus' text format (docs/operations.md lists every metric)."""

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.api.plumbing.deps import MetricsDep
from service.api.plumbing.security import MetricsAccess, auth_responses

router = APIRouter(tags=["system"], dependencies=[Depends(MetricsAccess())], responses=auth_responses())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def metrics(registry: MetricsDep) -> Response:
    """Request, prediction and cache metrics of this API process, and job, queue and worker metrics read from
    the database now (so they count the work of every worker process)."""
    body = await run_in_threadpool(generate_latest, registry.registry)  # the database part does I/O
    return Response(body, media_type=CONTENT_TYPE_LATEST)
