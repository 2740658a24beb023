"""The from-scratch BatchNorm against PyTorch's nn.BatchNorm1d/2d."""

import pytest
import torch
from torch import nn

from models.batchnorm import BatchNorm, batch_norm

# (input shape, num_dims, PyTorch's layer)
CASES = [((32, 7), 2, nn.BatchNorm1d), ((8, 5, 6, 6), 4, nn.BatchNorm2d)]


def _pair(shape: tuple[int, ...], num_dims: int, reference: type[nn.Module]) -> tuple[BatchNorm, nn.Module]:
    ours = BatchNorm(shape[1], num_dims=num_dims)
    theirs = reference(shape[1], eps=1e-5, momentum=0.1)  # PyTorch's momentum = 1 - ours
    return ours, theirs


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)


@pytest.mark.parametrize(("shape", "num_dims", "reference"), CASES)
def test_training_mode_matches_torch_outputs_and_moving_statistics(shape, num_dims, reference) -> None:
    torch.manual_seed(0)
    ours, theirs = _pair(shape, num_dims, reference)
    for _ in range(3):
        x = torch.randn(shape) * 3 + 1.5
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    n = x.numel() // shape[1]
    torch.testing.assert_close(_flat(ours.moving_mean), theirs.running_mean, rtol=1e-5, atol=1e-6)
    # PyTorch stores the unbiased variance: n/(n-1) times the biased one the book keeps. The factor applies
    # to each batch's contribution, so compare the decayed parts.
    decay = 0.9**3
    ours_batch_part = _flat(ours.moving_var) - decay
    theirs_batch_part = (theirs.running_var - decay) * (n - 1) / n
    torch.testing.assert_close(ours_batch_part, theirs_batch_part, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("shape", "num_dims", "reference"), CASES)
def test_prediction_mode_uses_moving_statistics_like_torch(shape, num_dims, reference) -> None:
    torch.manual_seed(1)
    ours, theirs = _pair(shape, num_dims, reference)
    x = torch.randn(shape) * 2 - 1
    ours(x), theirs(x)
    with torch.no_grad():  # account for the n/(n-1) factor in PyTorch's running_var
        theirs.running_var.copy_(_flat(ours.moving_var))
    ours.eval(), theirs.eval()
    y = torch.randn(shape)
    torch.testing.assert_close(ours(y), theirs(y), rtol=1e-5, atol=1e-5)


def test_prediction_mode_does_not_update_moving_statistics() -> None:
    layer = BatchNorm(4, num_dims=2).eval()
    layer(torch.randn(16, 4) + 10)
    assert torch.equal(layer.moving_mean, torch.zeros(1, 4))
    assert torch.equal(layer.moving_var, torch.ones(1, 4))


def test_moving_statistics_are_buffers_that_survive_a_state_dict_round_trip() -> None:
    layer = BatchNorm(3, num_dims=4)
    layer(torch.randn(4, 3, 5, 5) * 4 + 2)
    state = layer.state_dict()
    assert {"moving_mean", "moving_var", "gamma", "beta"} <= set(state)
    restored = BatchNorm(3, num_dims=4)
    restored.load_state_dict(state)
    assert torch.equal(restored.moving_mean, layer.moving_mean)
    assert torch.equal(restored.moving_var, layer.moving_var)
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(restored.eval()(x), layer.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 3)])
def test_gradcheck_passes_in_float64(shape: tuple[int, ...]) -> None:
    torch.manual_seed(2)
    c = shape[1]
    stat_shape = (1, c) if len(shape) == 2 else (1, c, 1, 1)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    gamma = torch.rand(stat_shape, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(stat_shape, dtype=torch.float64, requires_grad=True)
    mean, var = torch.zeros(stat_shape, dtype=torch.float64), torch.ones(stat_shape, dtype=torch.float64)

    def f(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return batch_norm(x, gamma, beta, mean, var, eps=1e-5, momentum=0.9, training=True)

    assert torch.autograd.gradcheck(f, (x, gamma, beta))


def test_rejects_input_of_the_wrong_rank() -> None:
    with pytest.raises(ValueError, match="num_dims=2"):
        BatchNorm(3, num_dims=2)(torch.randn(2, 3, 4, 4))
