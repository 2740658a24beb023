"""Exact reruns: a job's stored (fully resolved) spec, with optional overrides at dotted paths, queued again."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from service.errors import InvalidInput, describe_validation_errors
from service.jobspec.paths import PathError, field_annotation, with_values
from service.jobspec.spec import JobRequest
from service.storage.jobs import get_job
from service.sweeps.space import Scalar


class CloneRequest(BaseModel):
    """Overrides of the cloned spec (dotted path -> value; none for an exact rerun) and the queue priority."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{}, {"overrides": {"seed": 1}}]}
    )

    overrides: dict[str, Scalar | None] = Field(default_factory=dict, max_length=64)
    priority: int = Field(0, ge=-1000, le=1000)


def cloned_spec(session: Session, job_id: int, overrides: dict[str, Any]) -> JobRequest:
    """The stored spec of job `job_id` with `overrides` applied, as a request (an override of null asks for the
    book's default again); NotFound if no such job, InvalidInput naming a bad path."""
    spec = get_job(session, job_id).spec
    for path in overrides:
        try:
            field_annotation(path)
        except PathError as exc:
            raise InvalidInput(f"overrides.{path}: {exc}") from None
    try:
        return JobRequest.model_validate(with_values(spec, overrides))
    except ValidationError as exc:
        raise InvalidInput(f"overrides: {describe_validation_errors(exc.errors())}") from None
