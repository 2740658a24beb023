"""Batch normalization written from scratch, as in the seed, with PyTorch-style state handling.

Both layers here have a distributed mode for data-parallel training: the batch statistics are those of the
global batch, from an all-reduce of each process's per-channel count, sum and sum of squares (differentiable,
so the gradient flows through the other processes' examples too).
"""

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def global_moments(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean and biased variance per channel (dim 1) over `dims` of the batch split across all processes.

    Returns (mean, var) shaped (C,) in x's dtype and the global number of values per channel. The sums are
    float64, so E[x^2] - E[x]^2 loses nothing that float32's two passes would keep.
    """
    channels = x.shape[1]
    local = torch.tensor([x.numel() // max(channels, 1)], dtype=torch.float64, device=x.device)
    sums = x.sum(dim=dims, dtype=torch.float64)  # (C,)
    squares = (x * x).sum(dim=dims, dtype=torch.float64)  # (C,)
    stats = torch.cat([sums, squares, local])  # [sum (C), sum of squares (C), count]
    total: torch.Tensor = dist_fn.all_reduce(stats)  # type: ignore[no-untyped-call]
    count = total[-1]
    mean = total[:channels] / count
    var = total[channels : 2 * channels] / count - mean * mean
    return mean.to(x.dtype), var.clamp_min(0).to(x.dtype), int(count.item())


def batch_norm(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    moving_mean: torch.Tensor,
    moving_var: torch.Tensor,
    *,
    eps: float,
    momentum: float,
    training: bool,
    sync: bool = False,
) -> torch.Tensor:
    """Normalize `x` (2-D: over the batch; 4-D: per channel over N, H, W) and update the moving stats in place.

    In training mode the batch mean and biased variance normalize `x`, and the moving statistics become
    `momentum * moving + (1 - momentum) * batch_stat`; in prediction mode the moving statistics are used.
    With `sync` (inside a process group) the batch statistics are those of the global batch.
    """
    if x.dim() not in (2, 4):
        raise ValueError(f"batch_norm expects 2-D or 4-D input, got {x.dim()}-D")
    if not training:
        x_hat = (x - moving_mean) / torch.sqrt(moving_var + eps)
        return gamma * x_hat + beta
    if sync and dist.is_initialized():
        mean, var, _ = global_moments(x, (0,) if x.dim() == 2 else (0, 2, 3))  # (C,)
        shape = (1, -1) if x.dim() == 2 else (1, -1, 1, 1)
        mean, var = mean.view(shape), var.view(shape)
    elif x.dim() == 2:
        mean = x.mean(dim=0)  # (C,)
        var = ((x - mean) ** 2).mean(dim=0)
    else:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + eps)
    with torch.no_grad():
        moving_mean.mul_(momentum).add_(mean.detach().reshape(moving_mean.shape), alpha=1.0 - momentum)
        moving_var.mul_(momentum).add_(var.detach().reshape(moving_var.shape), alpha=1.0 - momentum)
    return gamma * x_hat + beta


class BatchNorm(nn.Module):
    """The seed's `BatchNorm(num_features, num_dims)`: num_dims is 2 after a linear layer, 4 after a conv."""

    moving_mean: torch.Tensor
    moving_var: torch.Tensor

    def __init__(self, num_features: int, num_dims: int, *, eps: float = 1e-5, momentum: float = 0.9) -> None:
        super().__init__()
        if num_dims not in (2, 4):
            raise ValueError(f"num_dims must be 2 or 4, got {num_dims}")
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features = num_features
        self.num_dims = num_dims
        self.eps = eps
        self.momentum = momentum
        self.sync = False  # set by data-parallel training: normalize with the global batch's statistics
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        # Buffers, not plain attributes: they are saved in state_dict and follow .to(device).
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.num_dims:
            raise ValueError(f"BatchNorm(num_dims={self.num_dims}) got {x.dim()}-D input")
        return batch_norm(
            x,
            self.gamma,
            self.beta,
            self.moving_mean,
            self.moving_var,
            eps=self.eps,
            momentum=self.momentum,
            training=self.training,
            sync=self.sync,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_dims={self.num_dims}, eps={self.eps}, momentum={self.momentum}"


class AllReduceBatchNorm(_BatchNorm):
    """nn.BatchNorm1d/2d/3d for a process group on any device (torch's SyncBatchNorm runs on GPUs only).

    Same parameters, buffers and running-statistics rule as nn.BatchNorm (running_var is unbiased), so its
    state dict is interchangeable with theirs; in eval mode it is exactly nn.BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(input)
        self._check_input_dim(input)
        mean, var, count = global_moments(input, (0, *range(2, input.dim())))  # (C,)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self._update_running(mean.detach(), var.detach(), count)
        shape = (1, -1) + (1,) * (input.dim() - 2)
        y = (input - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var * count / max(count - 1, 1)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
