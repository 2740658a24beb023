"""service.jobspec: the request and resolved spec, the dotted paths, the statuses (no torch, no database)."""

import pytest
from pydantic import ValidationError

from service.errors import InvalidInput
from service.jobspec import paths
from service.jobspec.spec import BOOK_BATCH_SIZE, BOOK_EPOCHS, JobRequest, JobSpec
from service.jobspec.status import JobStatus
from service.sweeps.compare import MAX_COMPARED, parse_job_ids


def test_resolve_fills_the_books_recipe_for_the_architecture_and_keeps_what_was_given():
    spec = JobRequest(architecture="resnet18", batch_size=64).resolve()
    assert isinstance(spec, JobSpec)
    assert (spec.epochs, spec.batch_size, spec.resize, spec.log_every) == (BOOK_EPOCHS, 64, 96, 64)
    assert spec.optimizer.lr == 0.05
    assert JobRequest(architecture="bn_lenet").resolve().optimizer.lr == 1.0
    assert JobRequest(architecture="bn_lenet").resolve().batch_size == BOOK_BATCH_SIZE


def test_a_resolved_spec_needs_every_field_and_reads_back_what_was_stored():
    with pytest.raises(ValidationError, match="epochs"):
        JobSpec.model_validate({"architecture": "bn_lenet"})
    stored = JobRequest(architecture="lenet", epochs=3).resolve().model_dump(mode="json")
    assert JobSpec.model_validate(stored).model_dump(mode="json") == stored


def test_a_row_stored_before_the_later_fields_existed_reads_with_their_defaults():
    old = JobRequest(architecture="lenet").resolve().model_dump(mode="json")
    for later in ("init", "normalize", "device", "distributed", "compile"):
        del old[later]
    spec = JobSpec.model_validate(old)
    assert (spec.init, spec.normalize, spec.device, spec.distributed, spec.compile) == (
        "xavier",
        False,
        "auto",
        None,
        False,
    )


def test_dotted_paths_read_set_flatten_and_diff():
    a = {"architecture": "bn_lenet", "optimizer": {"name": "sgd", "lr": 0.9}, "seed": 0}
    b = paths.with_values(a, {"optimizer.name": "adam", "resize": 32})
    assert a["optimizer"]["name"] == "sgd", "with_values copies"
    assert paths.read_path(b, "optimizer.name") == "adam" and paths.read_path(a, "resize") is None
    assert paths.flatten(a) == {"architecture": "bn_lenet", "optimizer.name": "sgd", "optimizer.lr": 0.9, "seed": 0}
    assert paths.diff([a, b]) == {"optimizer.name": ["sgd", "adam"], "resize": [None, 32]}
    assert paths.diff([a, a]) == {}
    with pytest.raises(paths.PathError, match="not a group"):
        paths.set_path({"seed": 1}, "seed.x", 2)


def test_field_annotation_names_the_bad_part_of_a_path():
    assert paths.field_annotation("optimizer.lr") == float | None
    with pytest.raises(paths.PathError, match="'optimiser' is not a job spec field"):
        paths.field_annotation("optimiser.lr")
    with pytest.raises(paths.PathError, match="name one field of the group"):
        paths.field_annotation("optimizer")
    with pytest.raises(paths.PathError, match="has no fields inside"):
        paths.field_annotation("seed.x")


def test_job_ids_to_compare_are_parsed_once_with_one_limit():
    assert parse_job_ids(["3,1", "2"]) == [3, 1, 2]
    assert parse_job_ids([]) == []
    for bad, reason in (
        (["1,a"], "not a comma-separated list"),
        (["0"], "positive"),
        (["1,2,1"], "repeats"),
        ([",".join(map(str, range(1, MAX_COMPARED + 2)))], f"give 1 to {MAX_COMPARED}"),
    ):
        with pytest.raises(InvalidInput, match=reason):
            parse_job_ids(bad)


def test_finished_statuses():
    assert {s for s in JobStatus if s.finished} == {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}
