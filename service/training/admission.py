"""Admission of a job spec: the checks that need the server's configuration (limits, dataset files, input size)."""

from pathlib import Path

from service.config import JobLimits
from service.errors import DatasetUnavailable, InvalidInput
from service.jobspec.spec import JobRequest, JobSpec, is_uploaded
from service.training.architectures import input_problem
from service.training.datasets import check_dataset_available, get_dataset_info


def admit_job(
    request: JobRequest,
    limits: JobLimits,
    *,
    data_dir: Path,
    allow_download: bool,
    uploaded_channels: int | None = None,
    keep_checkpoints: int | None = None,
) -> JobSpec:
    """The resolved spec of `request` (made here, once, and stored as it is; a left-out keep_checkpoints becomes the
    server's `keep_checkpoints`); InvalidInput naming the field when it exceeds a configured limit or cannot run
    here. An uploaded dataset comes pinned (`name@N`, by the caller, who reads the database) with its channels."""
    resolved = request.resolve()
    if resolved.keep_checkpoints is None:
        resolved = resolved.model_copy(update={"keep_checkpoints": keep_checkpoints})
    if resolved.epochs > limits.max_epochs:
        raise InvalidInput(f"epochs: {resolved.epochs} is above the limit of {limits.max_epochs} (max_epochs)")
    if resolved.batch_size > limits.max_batch_size:
        raise InvalidInput(
            f"batch_size: {resolved.batch_size} is above the limit of {limits.max_batch_size} (max_batch_size)"
        )
    if resolved.processes > limits.max_processes:
        raise InvalidInput(
            f"distributed.processes: {resolved.processes} is above the limit of {limits.max_processes} (max_processes)"
        )
    if resolved.batch_size % resolved.processes:
        raise InvalidInput(
            f"distributed.processes: {resolved.processes} processes cannot share a global batch of "
            f"{resolved.batch_size} evenly; choose a batch_size divisible by {resolved.processes}"
        )
    in_channels = uploaded_channels or _builtin_channels(resolved.dataset, data_dir, allow_download)
    problem = input_problem(resolved.architecture, resolved.resize, in_channels)
    if problem is not None:
        raise InvalidInput(f"resize: {resolved.resize} is too small for {resolved.architecture} ({problem})")
    return resolved


def _builtin_channels(name: str, data_dir: Path, allow_download: bool) -> int:
    if is_uploaded(name):
        raise InvalidInput(f"dataset: {name!r} is an uploaded dataset, which only a server with its database admits")
    try:
        check_dataset_available(name, data_dir, allow_download)
    except DatasetUnavailable as exc:
        raise DatasetUnavailable(f"dataset: {exc.detail}") from None
    return get_dataset_info(name).in_channels
