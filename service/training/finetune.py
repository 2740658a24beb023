"""Fine-tuning: a new model started from another job's checkpoint, checked before the job is queued.

Tensors whose names and shapes match are loaded; the classifier head (the last linear layer) may differ in shape
(another class count) and is then left as initialized; any other difference (another architecture, channel count
or input size, a missing tensor) is refused, listing every mismatched tensor with both shapes.
"""

from typing import Any

import torch
from torch import nn

from models.registry import build_model
from service.errors import CheckpointError, InvalidInput
from service.jobspec.spec import JobSpec
from service.training.checkpoints import read_checkpoint


def head_names(model: nn.Module) -> set[str]:
    """The state_dict names of the classifier head: the last nn.Linear's weight and bias."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return {f"{linears[-1]}.weight", f"{linears[-1]}.bias"} if linears else set()


def mismatches(model: nn.Module, weights: dict[str, torch.Tensor]) -> list[str]:
    """Every tensor of `model` that `weights` lacks, or has in another shape (the head excepted)."""
    head = head_names(model)
    problems = []
    for name, tensor in model.state_dict().items():
        want = tuple(tensor.shape)
        if name not in weights:
            problems.append(f"{name}: missing from the checkpoint (the model has {want})")
        elif tuple(weights[name].shape) != want and name not in head:
            problems.append(f"{name}: checkpoint {tuple(weights[name].shape)}, model {want}")
    return problems


def check_init_source(data: bytes, spec: JobSpec, *, in_channels: int, num_classes: int) -> None:
    """InvalidInput naming `init_from` and every mismatched tensor when the checkpoint cannot start `spec`."""
    assert spec.init_from is not None
    source = f"init_from: job {spec.init_from.job} (epoch {spec.init_from.epoch})"
    try:
        contents = read_checkpoint(data)
    except CheckpointError as exc:
        raise InvalidInput(f"{source}: its checkpoint is unreadable ({exc.detail})") from None
    architecture = contents.meta.get("architecture")
    if architecture != spec.architecture:
        raise InvalidInput(f"{source} trained {architecture!r}, not {spec.architecture!r}")
    model = build_model(spec.architecture, in_channels=in_channels, num_classes=num_classes, input_size=spec.resize)
    problems = mismatches(model, contents.prefixed("model."))
    if problems:
        raise InvalidInput(f"{source} does not fit this job: {'; '.join(problems)}")


def freeze_backbone(model: nn.Module) -> None:
    """Only the classifier head trains (BatchNorm's running statistics still follow the new data)."""
    head = head_names(model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in head)


def load_init(model: nn.Module, data: bytes) -> dict[str, Any]:
    """Load the checkpoint's matching tensors into `model` (the rest keep their init); what was loaded, for the
    run's environment record."""
    weights = read_checkpoint(data).prefixed("model.")
    problems = mismatches(model, weights)
    if problems:
        raise CheckpointError(f"init_from: the checkpoint does not fit: {'; '.join(problems)}")
    state = model.state_dict()
    loaded = {k: v for k, v in weights.items() if k in state and tuple(v.shape) == tuple(state[k].shape)}
    model.load_state_dict(loaded, strict=False)
    return {"loaded": len(loaded), "reinitialized": sorted(set(state) - set(loaded))}
