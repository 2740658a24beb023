"""Checkpoints: safetensors + JSON, loaded as eval models, and tampered ones refused with clear errors."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from service.errors import CheckpointError
from service.jobspec.spec import JobRequest
from service.training import fit, load_checkpoint, preprocess
from service.training.datasets import load_dataset
from tests.training.recorder import Recorder


@pytest.fixture(scope="module")
def checkpoint_bytes(data_dir: Path) -> bytes:
    spec = JobRequest(architecture="bn_lenet", epochs=1, train_subset=512, test_subset=256, batch_size=64).resolve()
    recorder = Recorder()
    fit(spec, data_dir=data_dir, callbacks=recorder, device="cpu")
    return recorder.checkpoints[-1].data


def _header(data: bytes) -> dict:
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])


def _retamper(data: bytes, *, meta_update: dict | None = None, tensors_update: dict | None = None) -> bytes:
    """Re-save a checkpoint with edited JSON metadata and/or tensors (what an attacker or a bug could do)."""
    meta = json.loads(_header(data)["__metadata__"]["convlab"])
    meta.update(meta_update or {})
    tensors = {**st_load(data), **(tensors_update or {})}
    return st_save(tensors, metadata={"convlab": json.dumps(meta)})


def test_checkpoint_is_safetensors_with_convlab_metadata(checkpoint_bytes: bytes) -> None:
    header = _header(checkpoint_bytes)
    meta = json.loads(header["__metadata__"]["convlab"])
    assert meta["format"] == "convlab-checkpoint/1" and meta["architecture"] == "bn_lenet"
    assert "model.0.weight" in header and "rng.cpu" in header
    assert not checkpoint_bytes.startswith(b"\x80")  # not a pickle


def test_load_checkpoint_gives_an_eval_model_and_what_inference_needs(checkpoint_bytes: bytes) -> None:
    loaded = load_checkpoint(checkpoint_bytes)
    assert not loaded.model.training
    assert (loaded.architecture, loaded.in_channels, loaded.num_classes, loaded.input_size) == ("bn_lenet", 1, 10, 28)
    assert loaded.dataset == "fashion_mnist" and loaded.class_names[0] == "T-shirt/top"
    assert loaded.mean == (0.0,) and loaded.std == (1.0,)
    assert loaded.epoch == 1 and loaded.step == 8
    assert loaded.metrics is not None and loaded.metrics.epoch == 1


def test_loaded_model_reproduces_the_test_accuracy_recorded_in_training(
    checkpoint_bytes: bytes, data_dir: Path
) -> None:
    loaded = load_checkpoint(checkpoint_bytes)
    test = load_dataset("fashion_mnist", data_dir, test_subset=256).test
    with torch.no_grad():
        x = preprocess(test.images, size=loaded.input_size, mean=loaded.mean, std=loaded.std)
        accuracy = (loaded.model(x).argmax(dim=1) == test.labels).float().mean().item()
    assert loaded.metrics is not None
    assert accuracy == pytest.approx(loaded.metrics.test_acc, abs=1e-9)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x80\x04\x95" + b"\x00" * 64], ids=["empty", "text", "pickle"])
def test_corrupt_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(CheckpointError, match=r"corrupt|not a convlab"):
        load_checkpoint(data)


def test_truncated_checkpoint_is_refused(checkpoint_bytes: bytes) -> None:
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(checkpoint_bytes[: len(checkpoint_bytes) // 2])


def test_safetensors_file_of_another_program_is_refused() -> None:
    foreign = st_save({"weight": torch.zeros(3)}, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a convlab checkpoint"):
        load_checkpoint(foreign)


def test_other_format_version_is_refused(checkpoint_bytes: bytes) -> None:
    with pytest.raises(CheckpointError, match="format 'convlab-checkpoint/99'"):
        load_checkpoint(_retamper(checkpoint_bytes, meta_update={"format": "convlab-checkpoint/99"}))


def test_wrong_architecture_is_refused(checkpoint_bytes: bytes) -> None:
    with pytest.raises(CheckpointError, match="does not fit resnet18"):
        load_checkpoint(_retamper(checkpoint_bytes, meta_update={"architecture": "resnet18"}))


def test_unknown_architecture_is_refused(checkpoint_bytes: bytes) -> None:
    with pytest.raises(CheckpointError, match=r"architecture that cannot be built.*'vgg16'"):
        load_checkpoint(_retamper(checkpoint_bytes, meta_update={"architecture": "vgg16"}))


@pytest.mark.parametrize("architecture", [None, ["bn_lenet"]], ids=["null", "a-list"])
def test_architecture_that_is_not_a_name_is_refused(checkpoint_bytes: bytes, architecture: object) -> None:
    with pytest.raises(CheckpointError, match="architecture that cannot be built"):
        load_checkpoint(_retamper(checkpoint_bytes, meta_update={"architecture": architecture}))


def test_tensor_of_the_wrong_shape_is_refused(checkpoint_bytes: bytes) -> None:
    tampered = _retamper(checkpoint_bytes, tensors_update={"model.0.weight": torch.zeros(6, 1, 3, 3)})
    with pytest.raises(CheckpointError, match=r"wrong shapes.*0\.weight"):
        load_checkpoint(tampered)


def test_metadata_that_does_not_match_the_tensors_is_refused(checkpoint_bytes: bytes) -> None:
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_checkpoint(_retamper(checkpoint_bytes, meta_update={"num_classes": 5}))


def test_checkpoint_carries_the_normalization_used_in_training(data_dir: Path) -> None:
    spec = JobRequest(
        architecture="bn_lenet", dataset="synthetic", epochs=1, train_subset=128, batch_size=64, normalize=True
    ).resolve()
    recorder = Recorder()
    fit(spec, data_dir=data_dir, callbacks=recorder, device="cpu")
    loaded = load_checkpoint(recorder.checkpoints[-1].data)
    assert (loaded.mean, loaded.std) == ((0.5,), (0.25,))
    assert loaded.class_names[0] == "pattern 0" and loaded.spec["normalize"] is True


@pytest.mark.parametrize(("field", "value"), [("dataset", None), ("class_names", 7), ("epoch", "one")])
def test_metadata_lacking_a_field_or_mistyped_is_a_checkpoint_error(
    checkpoint_bytes: bytes, field: str, value: object
) -> None:
    meta = json.loads(_header(checkpoint_bytes)["__metadata__"]["convlab"])
    if value is None:
        del meta[field]
    else:
        meta[field] = value
    tensors = st_load(checkpoint_bytes)
    with pytest.raises(CheckpointError, match="metadata is incomplete or malformed"):
        load_checkpoint(st_save(tensors, metadata={"convlab": json.dumps(meta)}))
