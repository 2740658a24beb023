"""Data functions for uploaded datasets: versions by name, the owner's stored bytes, and who still uses one."""

import hashlib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from service.errors import Conflict, NotFound
from service.jobspec.spec import UPLOADED_REF
from service.storage.jobs import Owner
from service.storage.orm import DatasetVersion, Job, Sweep


def find_content(session: Session, name: str, sha256: str) -> DatasetVersion | None:
    """The version of `name` with content address `sha256`, if it was uploaded before."""
    query = select(DatasetVersion).where(DatasetVersion.name == name, DatasetVersion.sha256 == sha256)
    return session.scalars(query).one_or_none()


def add_version(
    session: Session, *, name: str, sha256: str, data: bytes, facts: dict[str, Any], owner: Owner
) -> DatasetVersion:
    """Store `data` as the next version of `name`; IntegrityError at the flush when another upload took it."""
    latest = session.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.name == name))
    row = DatasetVersion(
        name=name,
        version=(latest or 0) + 1,
        sha256=sha256,
        data_sha256=hashlib.sha256(data).hexdigest(),
        stored_bytes=len(data),
        facts=facts,
        owner_token_id=owner.token_id,
        owner_name=owner.name,
        client_address=owner.address,
        data=data,
    )
    session.add(row)
    session.flush()
    return row


def stored_bytes(session: Session, owner: Owner) -> int:
    """Bytes of datasets stored by `owner`'s token (by its address when there is no token)."""
    query = select(func.coalesce(func.sum(DatasetVersion.stored_bytes), 0))
    if owner.token_id is not None:
        query = query.where(DatasetVersion.owner_token_id == owner.token_id)
    else:
        query = query.where(DatasetVersion.owner_token_id.is_(None), DatasetVersion.client_address == owner.address)
    return int(session.scalar(query) or 0)


def list_versions(session: Session, name: str | None = None) -> list[DatasetVersion]:
    """Every version (of `name` when given), by name then version."""
    query = select(DatasetVersion).order_by(DatasetVersion.name, DatasetVersion.version)
    if name is not None:
        query = query.where(DatasetVersion.name == name)
    return list(session.scalars(query))


def get_version(session: Session, name: str, version: int, *, with_data: bool = False) -> DatasetVersion:
    """Version `version` of `name`; NotFound naming it."""
    query = select(DatasetVersion).where(DatasetVersion.name == name, DatasetVersion.version == version)
    if with_data:
        query = query.options(undefer(DatasetVersion.data))
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"dataset {name}@{version} not found")
    return row


def pin(session: Session, ref: str) -> DatasetVersion:
    """The version `ref` names: `name@N`, or `name` for its latest; NotFound naming it."""
    match = UPLOADED_REF.fullmatch(ref)
    if match is None:
        raise NotFound(f"dataset {ref!r} not found")
    name, version = match["name"], match["version"]
    if version is not None:
        return get_version(session, name, int(version))
    versions = list_versions(session, name)
    if not versions:
        raise NotFound(f"dataset {name!r} not found; upload it with POST /datasets?name={name}")
    return versions[-1]


def users(session: Session, row: DatasetVersion) -> list[str]:
    """Who refers to this version: jobs whose spec trains on it, sweeps whose base does."""
    ref = f"{row.name}@{row.version}"
    job_ids = session.scalars(select(Job.id).where(Job.spec["dataset"].as_string() == ref).order_by(Job.id))
    sweep_ids = session.scalars(select(Sweep.id).where(Sweep.base["dataset"].as_string() == ref).order_by(Sweep.id))
    return [*(f"job {i}" for i in job_ids), *(f"sweep {i}" for i in sweep_ids)]


def delete_version(session: Session, name: str, version: int) -> None:
    """Delete a version nothing refers to; Conflict naming the jobs and sweeps that still do."""
    row = get_version(session, name, version)
    using = users(session, row)
    if using:
        shown = ", ".join(using[:10]) + (f" and {len(using) - 10} more" if len(using) > 10 else "")
        raise Conflict(f"dataset {name}@{version} is used by {shown}; delete those first")
    session.delete(row)
    session.flush()
