"""Live job events as Server-Sent Events: status changes, finished epochs and progress."""

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.orm import Session, sessionmaker

from service.api.plumbing.deps import MAX_ID, ExistingJobId, SessionFactoryDep, SettingsDep
from service.api.plumbing.security import JOBS_READ, auth_responses
from service.api.wire.errors import ErrorResponse
from service.errors import InvalidInput
from service.jobspec.status import JobStatus
from service.storage import jobs

router = APIRouter(prefix="/jobs", tags=["history"], dependencies=[Depends(JOBS_READ)], responses=auth_responses())
PAGE = 500  # events sent per database read


def resume_after(
    last_event_id: Annotated[str | None, Header(description="Resume after this event id (sent by browsers).")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Resume after this event id (for plain clients).")
    ] = None,
) -> int:
    """The event id to resume after: the Last-Event-ID header, else `after`, else 0 (from the beginning)."""
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    text = last_event_id.strip()
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_ID):
        raise InvalidInput(f"Last-Event-ID: expected an event id (a non-negative integer), got {last_event_id!r}")
    return int(text)


async def event_stream(
    request: Request, factory: sessionmaker[Session], job_id: int, after: int, interval: float
) -> AsyncIterator[ServerSentEvent]:
    """Stored events after `after`, then new ones and progress as they happen, until the job has finished."""
    last_progress: dict[str, Any] | None = None
    while not await request.is_disconnected():
        state = await to_thread.run_sync(partial(jobs.poll_job, factory, job_id, after_id=after, limit=PAGE))
        for event_id, kind, payload in state.events:
            after = event_id
            yield ServerSentEvent(id=str(event_id), event=kind, data={"job_id": job_id, **payload})
        if state.job is None:
            yield ServerSentEvent(event="deleted", data={"job_id": job_id})
            return
        if state.finished:
            return
        if state.job != last_progress and state.job["status"] == JobStatus.running:
            last_progress = state.job
            yield ServerSentEvent(event="progress", data={"job_id": job_id, **state.job})
        await asyncio.sleep(interval)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a job live (Server-Sent Events)",
    responses={
        200: {
            "description": "`status` events (id = event row), `epoch` events with the epoch's metrics and "
            "`download` events while a dataset arrives on first use (with id), "
            "and `progress` events (no id) while it runs. The stream closes after the final status.",
        },
        404: {"model": ErrorResponse, "description": "No such job."},
        422: {"model": ErrorResponse, "description": "Last-Event-ID is not an event id."},
    },
)
async def stream_events(
    request: Request,
    job_id: ExistingJobId,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    after: Annotated[int, Depends(resume_after)],
) -> AsyncIterator[ServerSentEvent]:
    """Replay the job's events after Last-Event-ID, then stream new ones until the job finishes."""
    async for event in event_stream(request, factory, job_id, after, settings.serving.events_poll_seconds):
        yield event
