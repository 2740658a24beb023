"""The dashboard's pages: each reads through the storage layer and renders a template (tables work without JS).

Pages: jobs, a new job, a job, compare, the lab, architectures, uploaded datasets and the model registry.
"""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from service.access import Principal, Scope
from service.api.plumbing.deps import JobDep, SessionDep, SettingsDep
from service.jobspec.paths import diff, flatten
from service.jobspec.spec import BUILTIN_DATASETS, UPLOADED_NAME
from service.jobspec.status import JobStatus
from service.storage import datasets, jobs, registry
from service.sweeps.compare import load_compared, parse_job_ids
from service.training.architectures import catalogue, layer_table
from service.web import views
from service.web.access import PAGE_DATASETS_READ, PAGE_JOBS_READ, PAGE_JOBS_WRITE, PAGE_LAB, PAGE_MODELS_READ
from service.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
MAX_TEST_INDEX = 59_999
Status = Annotated[JobStatus | None, Query()]
PageNumber = Annotated[int, Query(ge=1, le=10**9)]
DatasetName = Annotated[str, Path(pattern=f"^{UPLOADED_NAME.pattern}$")]
DatasetVersionNumber = Annotated[int, Path(ge=1, le=999_999_999)]
ModelName = Annotated[str, Path(max_length=64)]
JobWriter = Annotated[Principal, Depends(PAGE_JOBS_WRITE)]


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


@router.get("/ui/jobs/new")
def new_job_page(request: Request, session: SessionDep, principal: JobWriter) -> HTMLResponse:
    """The form that queues a job, with the book's recipe per architecture; the uploaded datasets and registered
    models to start from are offered to a caller who may read them."""
    presets = views.book_presets()
    uploaded = views.dataset_choices(datasets.list_versions(session)) if principal.allows(Scope.datasets_read) else []
    models = [m.name for m in registry.list_models(session)] if principal.allows(Scope.models_read) else []
    return render(
        request,
        "new_job.html",
        presets=presets,
        architectures=list(presets),
        builtin=BUILTIN_DATASETS,
        uploaded=uploaded,
        models=models,
    )


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
        dataset_path=views.dataset_page_path(str(job.spec["dataset"])),
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


@router.get("/ui/datasets", dependencies=[Depends(PAGE_DATASETS_READ)])
def datasets_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Uploaded datasets: every version with its classes, image counts, size and owner."""
    rows = [views.dataset_view(row) for row in datasets.list_versions(session)]
    return render(request, "datasets.html", rows=rows)


@router.get("/ui/datasets/{name}/versions/{version}", dependencies=[Depends(PAGE_DATASETS_READ)])
def dataset_page(
    request: Request, session: SessionDep, name: DatasetName, version: DatasetVersionNumber
) -> HTMLResponse:
    """One version of an uploaded dataset: its facts, counts per class and split, sample grid, and who uses it."""
    row = datasets.get_version(session, name, version)  # NotFound: 404
    siblings = [r.version for r in datasets.list_versions(session, name)]
    used_by = datasets.users(session, row)
    return render(request, "dataset.html", d=views.dataset_view(row), versions=siblings, used_by=used_by)


@router.get("/ui/models", dependencies=[Depends(PAGE_MODELS_READ)])
def models_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Registered models: description, how many versions, the latest, and where each alias points."""
    found = [
        (m, registry.list_versions(session, m), registry.list_aliases(session, m))
        for m in registry.list_models(session)
    ]
    return render(request, "models.html", models=found)


@router.get("/ui/models/{name}", dependencies=[Depends(PAGE_MODELS_READ)])
def model_page(request: Request, session: SessionDep, name: ModelName) -> HTMLResponse:
    """One model: its versions with their metrics, its aliases with every move, and the promote form."""
    model = registry.get_model(session, name)  # NotFound: 404
    aliases = registry.list_aliases(session, model)
    versions = [views.version_row(v, aliases) for v in registry.list_versions(session, model)]
    history = {alias: registry.alias_history(session, model, alias) for alias in aliases}
    return render(
        request,
        "model.html",
        model=model,
        versions=versions,
        aliases=aliases,
        history=history,
        alias_choices=views.alias_choices(aliases),
    )
