"""Batch normalization written from scratch, as in the seed, with PyTorch-style state handling."""

import torch
from torch import nn


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
) -> torch.Tensor:
    """Normalize `x` (2-D: over the batch; 4-D: per channel over N, H, W) and update the moving stats in place.

    In training mode the batch mean and biased variance normalize `x`, and the moving statistics become
    `momentum * moving + (1 - momentum) * batch_stat`; in prediction mode the moving statistics are used.
    """
    if x.dim() not in (2, 4):
        raise ValueError(f"batch_norm expects 2-D or 4-D input, got {x.dim()}-D")
    if not training:
        x_hat = (x - moving_mean) / torch.sqrt(moving_var + eps)
        return gamma * x_hat + beta
    if x.dim() == 2:
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
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_dims={self.num_dims}, eps={self.eps}, momentum={self.momentum}"
