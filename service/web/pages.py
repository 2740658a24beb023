"""The dashboard's pages: each reads through the storage layer and renders a template (tables work without JS)."""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from service.api.plumbing.deps import JobDep, SessionDep, SettingsDep
from service.jobspec.paths import diff, flatten
from service.jobspec.status import JobStatus
from service.storage import jobs
from service.sweeps.compare import load_compared, parse_job_ids
from service.training.architectures import catalogue, layer_table
from service.web import views
from service.web.access import PAGE_JOBS_READ, PAGE_JOBS_WRITE, PAGE_LAB
from service.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
MAX_TEST_INDEX = 59_999
Status = Annotated[JobStatus | None, Query()]
PageNumber = Annotated[int, Query(ge=1, le=10**9)]


def _jobs_context(session: SessionDep, status: JobStatus | None, page: int) -> dict[str, Any]:
    items, total = jobs.list_jobs(session, status=status, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    rows = [views.job_row(j) for j in items]
    return {
        "rows": rows,
        "total": total,
        "page": page,
        "pages": max(1, math.ceil(total / PAGE_SIZE)),
        "status": status.value if status else "",
        "statuses": [s.value for s in JobStatus],
        "live": any(r.status.active for r in rows),
    }


@router.get("/", dependencies=[Depends(PAGE_JOBS_READ)])
def jobs_page(request: Request, session: SessionDep, status: Status = None, page: PageNumber = 1) -> HTMLResponse:
    """Jobs, newest first, with a status filter and pages; the table refreshes while any job is active."""
    return render(request, "jobs.html", **_jobs_context(session, status, page))


@router.get("/ui/jobs/rows", dependencies=[Depends(PAGE_JOBS_READ)])
def job_rows(request: Request, session: SessionDep, status: Status = None, page: PageNumber = 1) -> HTMLResponse:
    """The jobs table alone (what htmx swaps in)."""
    return render(request, "_job_table.html", **_jobs_context(session, status, page))


@router.get("/ui/jobs/new", dependencies=[Depends(PAGE_JOBS_WRITE)])
def new_job_page(request: Request) -> HTMLResponse:
    """The form that queues a job, with the book's recipe per architecture."""
    presets = views.book_presets()
    return render(request, "new_job.html", presets=presets, architectures=list(presets))


@router.get("/ui/jobs/{job_id}", dependencies=[Depends(PAGE_JOBS_READ)])
def job_page(request: Request, job: JobDep, session: SessionDep) -> HTMLResponse:
    """One job: spec, progress, live charts, events, checkpoints, cancel/delete and predictions."""
    kept, best = jobs.kept_checkpoints(session, job.id)
    events = jobs.list_events(session, job.id)
    return render(
        request,
        "job.html",
        job=job,
        row=views.job_row(job),
        spec=flatten(job.spec),
        checkpoints=[(c, c.id == best) for c in kept],
        events=events,
        last_event_id=events[-1].id if events else 0,
    )


@router.get("/ui/jobs/{job_id}/samples/{index}.png", dependencies=[Depends(PAGE_JOBS_READ)])
def sample_image(job: JobDep, settings: SettingsDep, index: Annotated[int, Path(ge=0, le=MAX_TEST_INDEX)]) -> Response:
    """A test image of the job's dataset as PNG, for the predict box."""
    png = views.sample_png(str(job.spec["dataset"]), settings.data_dir, index)
    return Response(png, media_type="image/png")


@router.get("/ui/compare", dependencies=[Depends(PAGE_JOBS_READ)])
def compare_page(
    request: Request,
    session: SessionDep,
    jobs_: Annotated[list[str], Query(alias="jobs")] = [],  # noqa: B006
) -> HTMLResponse:
    """Runs overlaid: the spec fields that differ and each run's final and best metrics (curves drawn by JS)."""
    ids = parse_job_ids(jobs_)
    found, histories = load_compared(session, ids)  # each job and history read once
    outcomes = [views.outcome(history) for history in histories]
    differing = list(diff([job.spec for job in found]).items())
    rows = list(zip(found, outcomes, strict=True))
    return render(request, "compare.html", jobs=found, ids=ids, rows=rows, differing=differing)


@router.get("/ui/lab", dependencies=[Depends(PAGE_LAB)])
def lab_page(request: Request) -> HTMLResponse:
    """The optimization lab: a function, optimizers, the contour or curve with their iterates."""
    return render(request, "lab.html")


@router.get("/ui/architectures", dependencies=[Depends(PAGE_JOBS_READ)])
def architectures_page(
    request: Request,
    name: Annotated[str | None, Query(max_length=40)] = None,
    input_size: Annotated[int | None, Query(ge=12, le=512)] = None,
) -> HTMLResponse:
    """The architectures and the layer table of one of them for a chosen input size."""
    archs = catalogue()
    chosen = name or archs[0].name
    table = layer_table(chosen, input_size=input_size, in_channels=1)
    return render(request, "architectures.html", archs=archs, chosen=chosen, table=table)
