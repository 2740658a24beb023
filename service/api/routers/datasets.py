"""Uploaded datasets: upload an ImageFolder archive, list names and versions, read one, its sample grid, delete."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.api.plumbing.deps import SessionDep, SessionFactoryDep, SettingsDep
from service.api.plumbing.security import DATASETS_READ, WritesDatasets, auth_responses
from service.api.plumbing.uploads import Upload, received_body
from service.api.routers.jobs import owner_of
from service.api.wire.datasets import DatasetRead, DatasetSummary, DatasetVersionRead
from service.api.wire.errors import ErrorResponse
from service.config import UploadSettings
from service.errors import Conflict, Forbidden, PayloadTooLarge
from service.ingest import Options, ingest_archive
from service.ingest.samples import sample_grid
from service.jobspec.spec import BUILTIN_DATASETS, UPLOADED_NAME
from service.storage import datasets as store
from service.storage.db import begin_write
from service.storage.jobs import Owner
from service.storage.orm import DatasetVersion

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=auth_responses())
READS = [Depends(DATASETS_READ)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such dataset."}}
NAME_PATTERN = f"^{UPLOADED_NAME.pattern}$"  # anchored: a pattern alone is searched for, not matched whole
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, examples=["flowers"])]
VersionPath = Annotated[int, Path(ge=1, le=999_999_999, examples=[1])]


def version_read(row: DatasetVersion) -> DatasetVersionRead:
    """A stored version as sent."""
    owner = row.owner_name or (f"address {row.client_address}" if row.client_address else None)
    return DatasetVersionRead.model_validate(
        {**row.facts, "name": row.name, "version": row.version, "ref": f"{row.name}@{row.version}"}
        | {"sha256": row.sha256, "created_at": row.created_at, "owner": owner, "stored_bytes": row.stored_bytes}
    )


def _store(
    factory: sessionmaker[Session], upload: Upload, *, name: str, options: Options, limits: UploadSettings, owner: Owner
) -> tuple[DatasetVersion, bool]:
    """Ingest the received archive and store it as the next version of `name` (or find it stored already)."""
    ingested = ingest_archive(upload.path, limits, options)
    with factory() as session:
        begin_write(session)  # read, then write: SQLite would refuse the upgrade at once if a worker wrote between
        existing = store.find_content(session, name, ingested.sha256)
        if existing is not None:
            return existing, False
        used = store.stored_bytes(session, owner)
        if used + len(ingested.data) > limits.max_stored_bytes:
            raise PayloadTooLarge(
                f"this caller stores {used} bytes of datasets; {len(ingested.data)} more would pass the limit of "
                f"{limits.max_stored_bytes} (CONVLAB_DATASET_MAX_STORED_BYTES)"
            )
        facts = {**ingested.facts, "archive_sha256": upload.sha256, "archive_bytes": upload.size}
        try:
            row = store.add_version(
                session, name=name, sha256=ingested.sha256, data=ingested.data, facts=facts, owner=owner
            )
            session.commit()
        except IntegrityError:
            raise Conflict(f"another upload of {name!r} was stored at the same moment; send it again") from None
        return row, True


@router.post(
    "",
    status_code=201,
    summary="Upload a dataset (zip or tar of class folders)",
    response_model=DatasetVersionRead,
    responses={
        200: {"model": DatasetVersionRead, "description": "The same content was uploaded before: that version."},
        400: {"model": ErrorResponse, "description": "An empty body, or one cut off before its end."},
        409: {"model": ErrorResponse, "description": "Another upload of the name was stored at the same moment."},
        413: {"model": ErrorResponse, "description": "The archive, a file in it, or the caller's quota is too large."},
        422: {"model": ErrorResponse, "description": "A hostile or malformed archive, image or layout."},
    },
)
async def upload_dataset(
    request: Request,
    principal: WritesDatasets,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    response: Response,
    name: Annotated[str, Query(pattern=NAME_PATTERN, description="The dataset's name.", examples=["flowers"])],
    size: Annotated[int, Query(ge=8, le=512, description="Side in pixels the images are stored at.")] = 32,
    val_fraction: Annotated[float, Query(gt=0, le=0.5, description="Held out per class when no split is given.")] = 0.2,
    seed: Annotated[int, Query(ge=0, le=2**32 - 1, description="Seed of that held-out split.")] = 0,
) -> DatasetVersionRead:
    """The request body is the archive itself (zip, or tar optionally gzip/bzip2/xz compressed): class folders at
    the top, or `train/` and `val/` (or `test/`) each holding class folders; PNG, JPEG, BMP or WebP. Identical
    content already stored under `name` answers 200 with that version; new content becomes the next version."""
    if name in BUILTIN_DATASETS:
        raise Forbidden(f"name: {name!r} is a built-in dataset; choose another name")
    options = Options(size=size, val_fraction=val_fraction, seed=seed)
    limits = settings.uploads
    async with received_body(request, settings.state_dir, max_bytes=limits.max_upload_bytes) as upload:
        row, created = await run_in_threadpool(
            _store, factory, upload, name=name, options=options, limits=limits, owner=owner_of(principal)
        )
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/datasets/{row.name}/versions/{row.version}"
    return version_read(row)


@router.get("", summary="List datasets", response_model=list[DatasetSummary], dependencies=READS)
def list_datasets(session: SessionDep) -> list[DatasetSummary]:
    """Every uploaded dataset's name, its versions and the latest one."""
    names: dict[str, list[int]] = {}
    for row in store.list_versions(session):
        names.setdefault(row.name, []).append(row.version)
    return [DatasetSummary(name=n, versions=v, latest=f"{n}@{v[-1]}") for n, v in names.items()]


@router.get(
    "/{name}", summary="A dataset's versions", response_model=DatasetRead, responses=NOT_FOUND, dependencies=READS
)
def get_dataset(name: NamePath, session: SessionDep) -> DatasetRead:
    """Every version of `name`, oldest first."""
    rows = store.list_versions(session, name)
    if not rows:
        store.pin(session, name)  # raises NotFound naming it
    return DatasetRead(name=name, versions=[version_read(r) for r in rows])


@router.get(
    "/{name}/versions/{version}",
    summary="One version of a dataset",
    response_model=DatasetVersionRead,
    responses=NOT_FOUND,
    dependencies=READS,
)
def get_version(name: NamePath, version: VersionPath, session: SessionDep) -> DatasetVersionRead:
    """Classes, counts per class and split, stored size and channels, mean/std, sha256, owner and creation time."""
    return version_read(store.get_version(session, name, version))


@router.get(
    "/{name}/versions/{version}/samples.png",
    summary="Sample images per class (PNG)",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}, "description": "One row per class."}},
    dependencies=READS,
)
def get_samples(
    name: NamePath,
    version: VersionPath,
    session: SessionDep,
    per_class: Annotated[int, Query(ge=1, le=32)] = 8,
) -> Response:
    """A grid of the first training images of each class, one row per class."""
    row = store.get_version(session, name, version, with_data=True)
    return Response(sample_grid(f"{name}@{version}", row.data, per_class=per_class), media_type="image/png")


@router.delete(
    "/{name}/versions/{version}",
    status_code=204,
    summary="Delete a dataset version",
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "A job or sweep still uses it."}},
)
def delete_version(name: NamePath, version: VersionPath, principal: WritesDatasets, session: SessionDep) -> Response:
    """Delete a version that no job or sweep refers to (409 naming them otherwise); only its owner or an admin."""
    begin_write(session)  # read, then write: see _store
    row = store.get_version(session, name, version)
    if not principal.may_change(row.owner_token_id):
        raise Forbidden(f"dataset {name}@{version} was uploaded by another token; only its owner or an admin can")
    store.delete_version(session, name, version)
    session.commit()
    return Response(status_code=204)
