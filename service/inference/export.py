"""A loaded checkpoint as ONNX: torch.onnx's dynamo exporter, a dynamic batch axis, verified with onnxruntime.

The verification runs the exported file on held-out inputs (the job's dataset's first test images when the
server has its files, else seeded random images of the same shape) at the full batch and at a batch of one,
and compares the logits with PyTorch's; a file whose largest absolute difference exceeds `TOLERANCE` is
refused. The model card (what a user needs to feed the file and read its answer) goes into the file's
metadata under `CARD_KEY` and is stored beside it.
"""

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.torch import save as st_save
from torch import nn

from service.errors import DatasetUnavailable, InvalidInput
from service.jobspec.spec import is_uploaded
from service.training.checkpoints import LoadedCheckpoint, epoch_record_json
from service.training.datasets import load_dataset, preprocess

TOLERANCE = 1e-4
HELD_OUT_IMAGES = 64
CARD_KEY = "convlab.model_card"
CARD_FORMAT = "convlab-model-card/1"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
MAX_BATCH = 65_536  # the batch axis' upper bound for torch.export; any batch a server will see


class ExportRefused(InvalidInput):
    """The exported file does not compute what the checkpoint computes (beyond TOLERANCE)."""

    def __init__(self, detail: str, *, max_abs_diff: float) -> None:
        super().__init__(detail)
        self.max_abs_diff = max_abs_diff

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Export-Max-Abs-Diff": f"{self.max_abs_diff:.3e}"}


@dataclass(frozen=True)
class HeldOut:
    """Inputs the export is checked on: the float batch [N, C, S, S] a model sees, and where it came from."""

    batch: torch.Tensor
    source: str


@dataclass(frozen=True)
class OnnxExport:
    """A verified ONNX file (its card inside), its card, and what verifying and making it measured."""

    data: bytes
    sha256: str
    max_abs_diff: float
    card: dict[str, Any]
    seconds: float


def held_out_inputs(loaded: LoadedCheckpoint, data_dir: Path | None, n: int = HELD_OUT_IMAGES) -> HeldOut:
    """The first `n` test images of the checkpoint's dataset, preprocessed as for training and prediction."""
    try:
        if data_dir is None or is_uploaded(loaded.dataset):
            raise DatasetUnavailable("no data directory, or an uploaded dataset (its file is the workers')")
        images = load_dataset(loaded.dataset, data_dir, train_subset=1, test_subset=n).test.images
        source = f"the first {images.shape[0]} images of the {loaded.dataset} test split"
    except DatasetUnavailable:
        generator = torch.Generator().manual_seed(0)
        shape = (n, loaded.in_channels, loaded.native_size, loaded.native_size)
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        source = f"{n} seeded random images (the {loaded.dataset} files are not on this server)"
    batch = preprocess(images, size=loaded.input_size, mean=loaded.mean, std=loaded.std)
    return HeldOut(batch.contiguous(), source)


def to_onnx(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """`model` in eval mode as ONNX, its batch axis dynamic (torch.onnx.export with dynamo=True)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.onnx.export(
        model.eval(),
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    if program is None:  # only the TorchScript exporter returns None (it writes to a file instead)
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def max_abs_diff(data: bytes, model: nn.Module, inputs: torch.Tensor) -> float:
    """The largest |logit difference| between onnxruntime on `data` and `model`, at the full batch and at one."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(inputs).float().numpy()
    worst = 0.0
    for n in (inputs.shape[0], 1):  # two batch sizes: the batch axis must really be dynamic
        got = session.run([OUTPUT_NAME], {INPUT_NAME: inputs[:n].numpy()})[0]
        diff = float(np.abs(np.asarray(got) - expected[:n]).max())
        worst = max(worst, diff if np.isfinite(diff) else float("inf"))
    return worst


def weights_sha256(model: nn.Module) -> str:
    """sha256 of the model's weights as one safetensors file without metadata (the same weights, same hash)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return hashlib.sha256(st_save(state)).hexdigest()


def model_card(
    loaded: LoadedCheckpoint, *, job_id: int, checkpoint_sha256: str, weights: str, diff: float, inputs: str
) -> dict[str, Any]:
    """What the file is, what it expects and returns, and how it was checked (JSON-able)."""
    side, channels = loaded.input_size, loaded.in_channels
    return {
        "format": CARD_FORMAT,
        "job_id": job_id,
        "epoch": loaded.epoch,
        "step": loaded.step,
        "architecture": loaded.architecture,
        "dataset": loaded.dataset,
        "spec": loaded.spec,
        "metrics": epoch_record_json(loaded.metrics),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", channels, side, side],
            "dtype": "float32",
            "layout": "NCHW",
            "size": side,
            "channels": channels,
            "native_size": loaded.native_size,
            "normalization": {"scale": 1 / 255, "mean": list(loaded.mean), "std": list(loaded.std)},
            "transform": f"pixels / 255, minus mean, divided by std (per channel), bilinear resize to {side}x{side} "
            "(antialiased when shrinking)",
        },
        "output": {"name": OUTPUT_NAME, "shape": ["batch", loaded.num_classes], "dtype": "float32"},
        "class_labels": list(loaded.class_names),
        "weights_sha256": weights,
        "checkpoint_sha256": checkpoint_sha256,
        "verification": {"max_abs_diff": diff, "tolerance": TOLERANCE, "inputs": inputs},
        "exporter": f"torch.onnx dynamo exporter, torch {torch.__version__}",
        "runtime": f"onnxruntime {ort.__version__}",
    }


def with_card(proto: onnx.ModelProto, card: dict[str, Any]) -> bytes:
    """The file's bytes with the card in its metadata (`CARD_KEY`) and a one-line doc string, checked."""
    onnx.helper.set_model_props(proto, {CARD_KEY: json.dumps(card, sort_keys=True)})
    proto.doc_string = f"convlab job {card['job_id']} epoch {card['epoch']}: {card['architecture']}"
    onnx.checker.check_model(proto)
    data: bytes = proto.SerializeToString()
    return data


def export_onnx(loaded: LoadedCheckpoint, *, job_id: int, checkpoint_sha256: str, data_dir: Path | None) -> OnnxExport:
    """Export, verify and describe a CPU checkpoint; ExportRefused if onnxruntime disagrees beyond TOLERANCE."""
    start = time.perf_counter()
    model = copy.deepcopy(loaded.model).cpu().eval()  # the caller's model stays untouched (it may be serving)
    held_out = held_out_inputs(loaded, data_dir)
    proto = to_onnx(model, held_out.batch)
    diff = max_abs_diff(proto.SerializeToString(), model, held_out.batch)
    if diff > TOLERANCE:
        raise ExportRefused(
            f"export refused: onnxruntime's logits differ from PyTorch's by up to {diff:.3e} on {held_out.source}, "
            f"above the tolerance of {TOLERANCE:g}",
            max_abs_diff=diff,
        )
    card = model_card(
        loaded,
        job_id=job_id,
        checkpoint_sha256=checkpoint_sha256,
        weights=weights_sha256(model),
        diff=diff,
        inputs=held_out.source,
    )
    data = with_card(proto, card)
    return OnnxExport(data, hashlib.sha256(data).hexdigest(), diff, card, time.perf_counter() - start)
