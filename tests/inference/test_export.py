"""Every architecture, trained for a few real steps, exports to ONNX that onnxruntime runs as PyTorch does:
the export's own verification, a dynamic batch axis, the model card, and both backends agreeing on 500 real
Fashion-MNIST test images (top-1 identical, probabilities within 1e-5)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from models.catalog import list_models
from service.inference.backends import OrtModel, ort_session
from service.inference.batching import forward
from service.inference.export import CARD_KEY, TOLERANCE, OnnxExport, export_onnx, weights_sha256
from service.jobspec.spec import JobRequest
from service.training import fit, load_checkpoint, preprocess
from service.training.checkpoints import LoadedCheckpoint
from service.training.datasets import load_dataset
from tests.training.recorder import Recorder

ARCHITECTURES = [info.name for info in list_models()]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def test_batches(data_dir: Path) -> dict[int, torch.Tensor]:
    """500 real Fashion-MNIST test images (uint8 [500, 1, 28, 28])."""
    return {0: load_dataset("fashion_mnist", data_dir, train_subset=1, test_subset=500).test.images}


@pytest.fixture(scope="module", params=ARCHITECTURES)
def exported(request, data_dir: Path) -> tuple[LoadedCheckpoint, OnnxExport]:
    """The architecture after 4 real Adam steps on Fashion-MNIST (BatchNorm statistics moved), and its export.

    ResNet-18 and DenseNet see 48x48 inputs instead of their 96: the same graph, a quarter of the work.
    """
    spec = JobRequest(
        architecture=request.param,
        epochs=1,
        train_subset=128,
        test_subset=32,
        batch_size=32,
        optimizer={"name": "adam", "lr": 0.001},
        resize=48 if request.param in ("resnet18", "densenet") else None,
    ).resolve()
    recorder = Recorder()
    fit(spec, data_dir=data_dir, callbacks=recorder, device="cpu")
    loaded = load_checkpoint(recorder.checkpoints[-1].data)
    return loaded, export_onnx(loaded, job_id=1, checkpoint_sha256="0" * 64, data_dir=data_dir)


def test_export_is_verified_against_pytorch_on_real_test_images(exported):
    _, made = exported
    assert 0 <= made.max_abs_diff <= TOLERANCE
    card = made.card
    assert card["verification"]["max_abs_diff"] == made.max_abs_diff
    assert card["verification"]["inputs"] == "the first 64 images of the fashion_mnist test split"


def test_export_has_a_dynamic_batch_axis_and_carries_its_card(exported):
    loaded, made = exported
    proto = onnx.load_from_string(made.data)
    onnx.checker.check_model(proto)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # symbolic: any batch size
    assert [d.dim_value for d in dims[1:]] == [1, loaded.input_size, loaded.input_size]
    card = json.loads({p.key: p.value for p in proto.metadata_props}[CARD_KEY])
    assert card == json.loads(json.dumps(made.card))
    assert card["architecture"] == loaded.architecture and card["class_labels"][9] == "Ankle boot"
    assert card["weights_sha256"] == weights_sha256(loaded.model)
    assert card["input"]["normalization"]["mean"] == list(loaded.mean)


def test_backends_agree_on_500_real_test_images(exported, test_batches):
    loaded, made = exported
    batch = preprocess(test_batches[0], size=loaded.input_size, mean=loaded.mean, std=loaded.std)
    by_torch = forward(loaded.model, batch)
    by_ort = forward(OrtModel(ort_session(made.data, CPU)), batch)
    assert by_torch.shape == by_ort.shape == (500, 10)
    top2 = by_torch.topk(2, dim=1).values
    # trained, so no near-tie: a gap above twice the tolerance cannot flip the top-1 of probabilities within it
    assert (top2[:, 0] - top2[:, 1]).min() > 2e-5
    assert torch.equal(by_torch.argmax(dim=1), by_ort.argmax(dim=1))
    assert float((by_torch - by_ort).abs().max()) <= 1e-5
    assert np.isfinite(by_ort.numpy()).all()
