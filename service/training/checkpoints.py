"""Checkpoints without pickle: one safetensors file whose header metadata carries the JSON state.

Tensor names: `model.<state_dict key>`, `optim.<param index>.<state key>`, `rng.cpu`, `rng.cuda`.
The JSON under metadata key `convlab` holds the format, architecture, data facts, spec, counters, optimizer
scalars and param groups, and the metrics.
"""

import json
import struct
from dataclasses import asdict, dataclass
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from models.registry import build_model
from service.errors import CheckpointError
from service.records import EpochRecord
from service.training.datasets import get_dataset_info

FORMAT = "convlab-checkpoint/1"
_META_KEY = "convlab"


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A model ready for prediction (eval mode, on the CPU) and what it needs to see inputs as in training."""

    model: nn.Module
    architecture: str
    in_channels: int
    num_classes: int
    input_size: int
    dataset: str
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    epoch: int
    step: int
    metrics: EpochRecord | None
    spec: dict[str, Any]
    native_size: int  # the side its dataset's images are stored at (what prediction scales inputs to first)


@dataclass(frozen=True)
class CheckpointContents:
    """The raw parts of a checkpoint: its JSON metadata and its tensors by name."""

    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors whose name starts with `prefix`, with the prefix removed."""
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def encode_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> bytes:
    """Serialize model, optimizer and RNG states with `meta` (JSON-able) into safetensors bytes."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for index, state in opt["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    full = {**meta, "format": FORMAT, "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}}
    return st_save(tensors, metadata={_META_KEY: json.dumps(full)})


def optimizer_state(contents: CheckpointContents) -> dict[str, Any]:
    """Rebuild the `optimizer.state_dict()` that was saved."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in contents.prefixed("optim.").items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for name, value in contents.meta["optimizer"]["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": contents.meta["optimizer"]["param_groups"]}


def _read_metadata(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise CheckpointError("checkpoint is corrupt: too short to be a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError("checkpoint is corrupt: not a safetensors file (bad header length)")
    try:
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header["__metadata__"][_META_KEY])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError("checkpoint is not a convlab checkpoint: no convlab metadata in its header") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"checkpoint has format {found!r}; this version reads {FORMAT!r}")
    return meta


def read_checkpoint(data: bytes) -> CheckpointContents:
    """Parse checkpoint bytes into metadata and tensors; CheckpointError if they are not ours or corrupt."""
    meta = _read_metadata(data)
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError for any corruption
        raise CheckpointError(f"checkpoint is corrupt: {exc}") from exc
    return CheckpointContents(meta, tensors)


def check_weights(model: nn.Module, weights: dict[str, torch.Tensor], architecture: str) -> None:
    """Raise CheckpointError unless `weights` has exactly the names and shapes of `model.state_dict()`."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"checkpoint does not fit {architecture}: missing tensors {missing[:5]}, unexpected {extra[:5]}"
        )
    wrong = [f"{k}: {tuple(weights[k].shape)} != {s}" for k, s in expected.items() if tuple(weights[k].shape) != s]
    if wrong:
        raise CheckpointError(f"checkpoint does not fit {architecture}: wrong shapes {wrong[:5]}")


def build_checked_model(contents: CheckpointContents) -> nn.Module:
    """Build the checkpoint's architecture and load its weights, refusing missing, extra or misshapen ones."""
    meta = contents.meta
    try:
        model = build_model(
            meta["architecture"],
            in_channels=int(meta["in_channels"]),
            num_classes=int(meta["num_classes"]),
            input_size=int(meta["input_size"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint names an architecture that cannot be built: {exc}") from exc
    weights = contents.prefixed("model.")
    check_weights(model, weights, meta["architecture"])
    model.load_state_dict(weights)
    return model


def load_checkpoint(data: bytes) -> LoadedCheckpoint:
    """Load checkpoint bytes as an eval-mode CPU model plus its metadata; CheckpointError if unusable."""
    contents = read_checkpoint(data)
    meta = contents.meta
    try:
        model = build_checked_model(contents).eval()
        metrics = meta.get("metrics")
        return LoadedCheckpoint(
            model=model,
            architecture=meta["architecture"],
            in_channels=int(meta["in_channels"]),
            num_classes=int(meta["num_classes"]),
            input_size=int(meta["input_size"]),
            dataset=meta["dataset"],
            class_names=tuple(meta["class_names"]),
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            epoch=int(meta["epoch"]),
            step=int(meta["step"]),
            metrics=EpochRecord(**metrics) if metrics else None,
            spec=meta["spec"],
            native_size=int(meta.get("native_size") or get_dataset_info(meta["dataset"]).native_size),
        )
    except (KeyError, TypeError, ValueError) as exc:  # metadata written by something else, or damaged (a 422)
        raise CheckpointError(f"checkpoint metadata is incomplete or malformed: {exc!r}") from exc


def epoch_record_json(record: EpochRecord | None) -> dict[str, Any] | None:
    """An EpochRecord as a JSON-able dict (None stays None)."""
    return asdict(record) if record is not None else None
