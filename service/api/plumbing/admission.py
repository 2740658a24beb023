"""The one admission of a job request on this server (submit, clone, sweep): what needs the database is settled
here (an uploaded dataset pinned to its version, a fine-tuning source checked against the new model), the rest in
`training.admission.admit_job`. Each problem is a 422 naming the field."""

from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import Conflict, InvalidInput, NotFound
from service.jobspec.spec import InitFrom, JobRequest, JobSpec, is_uploaded
from service.jobspec.status import JobStatus
from service.storage import datasets, jobs, registry
from service.training.admission import admit_job
from service.training.datasets import get_dataset_info
from service.training.finetune import check_init_source


def pin_dataset(session: Session, request: JobRequest) -> tuple[JobRequest, tuple[int, int] | None]:
    """`request` with an uploaded dataset pinned to its version (`flowers` -> `flowers@2`), and that version's
    (channels, classes); None for a built-in dataset."""
    if not is_uploaded(request.dataset):
        return request, None
    try:
        row = datasets.pin(session, request.dataset)
    except NotFound as exc:
        raise InvalidInput(f"dataset: {exc.detail}") from None
    pinned = request.model_copy(update={"dataset": f"{row.name}@{row.version}"})
    return pinned, (int(row.facts["channels"]), len(row.facts["classes"]))


def pin_init(session: Session, request: JobRequest) -> tuple[JobRequest, bytes | None]:
    """`request` with its `init_from` checkpoint chosen (epoch number and sha256 set), and that checkpoint's bytes."""
    source = request.init_from
    if source is None:
        return request, None
    source = _model_source(session, source)  # its errors name init_from.model
    try:
        assert source.job is not None  # _model_source set it
        job = jobs.get_job(session, source.job)
        if job.status is not JobStatus.succeeded:
            raise InvalidInput(
                f"job {source.job} is {job.status.value}; only a succeeded job's checkpoint can start one"
            )
        chosen = jobs.get_checkpoint(session, source.job, epoch=source.epoch if source.epoch != "best" else None)
    except (NotFound, Conflict, InvalidInput) as exc:
        raise InvalidInput(f"init_from: {exc.detail}") from None
    pinned = source.model_copy(update={"epoch": chosen.epoch, "checkpoint_sha256": chosen.sha256})
    return request.model_copy(update={"init_from": pinned}), chosen.data


def _model_source(session: Session, source: InitFrom) -> InitFrom:
    """A source naming a registered model, with the job and epoch of the version it means now (kept from then on:
    a clone starts from the same checkpoint); a source that names its job already, unchanged."""
    if source.job is not None or source.model is None:
        return source
    try:
        found = registry.resolve_model_version(session, source.model, alias=source.alias, version=source.version)
    except (NotFound, Conflict) as exc:
        raise InvalidInput(f"init_from.model: {exc.detail}") from None
    version_alias = source.alias if source.version is None else None
    return source.model_copy(
        update={"job": found.job_id, "epoch": found.epoch, "version": found.version, "alias": version_alias}
    )


def admit(session: Session, settings: Settings, request: JobRequest) -> JobSpec:
    """The resolved spec of `request`: its dataset and fine-tuning source pinned, checked against the limits."""
    request, uploaded = pin_dataset(session, request)
    request, source = pin_init(session, request)
    spec = admit_job(
        request,
        settings.jobs,
        data_dir=settings.data_dir,
        allow_download=settings.allow_download,
        uploaded_channels=uploaded[0] if uploaded else None,
        keep_checkpoints=settings.queue.keep_checkpoints,
    )
    if source is not None:
        if uploaded is None:
            info = get_dataset_info(spec.dataset)
            uploaded = (info.in_channels, info.num_classes)
        channels, classes = uploaded
        check_init_source(source, spec, in_channels=channels, num_classes=classes)
    return spec
