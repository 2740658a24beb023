"""Optimizers: the book's hand-written rules against torch.optim and against the book's printed numbers."""

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from service.errors import InvalidInput
from service.jobspec.spec import OptimizerRequest, OptimizerSpec
from service.training import ScratchOptimizer, build_optimizer
from service.training.optimizers import adagrad, sgd


def _train(spec: OptimizerSpec, steps: int = 25) -> dict[str, torch.Tensor]:
    """Run `steps` updates of a small model on a fixed regression problem; return its final weights."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x, y = torch.randn(64, 6, dtype=torch.float64), torch.randn(64, 1, dtype=torch.float64)
    optimizer = build_optimizer(model.parameters(), spec)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return model.state_dict()


# Rules whose formulas coincide with torch.optim's (same ε placement), so results must agree closely.
COINCIDING = [
    OptimizerSpec(name="sgd", lr=0.1),
    OptimizerSpec(name="sgd", lr=0.1, weight_decay=0.01),
    OptimizerSpec(name="sgd", lr=0.05, momentum=0.9),
    OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, nesterov=True),
    OptimizerSpec(name="adadelta", lr=1.0, rho=0.9, eps=1e-5),
    OptimizerSpec(name="adam", lr=0.01, eps=1e-6),
    OptimizerSpec(name="adam", lr=0.01, eps=1e-6, weight_decay=0.01),
    OptimizerSpec(name="adamw", lr=0.01, eps=1e-6, weight_decay=0.1),
]


@pytest.mark.parametrize("spec", COINCIDING, ids=lambda s: f"{s.name}-m{s.momentum}-n{s.nesterov}-wd{s.weight_decay}")
def test_scratch_rule_agrees_with_torch_optim(spec: OptimizerSpec) -> None:
    torch_weights = _train(spec)
    scratch_weights = _train(spec.model_copy(update={"implementation": "scratch"}))
    for name, tensor in torch_weights.items():
        torch.testing.assert_close(scratch_weights[name], tensor, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
def test_eps_inside_the_sqrt_agrees_with_torch_when_eps_is_negligible(name: str) -> None:
    spec = OptimizerSpec(name=name, lr=0.01, eps=1e-20)
    torch_weights = _train(spec)
    scratch_weights = _train(spec.model_copy(update={"implementation": "scratch"}))
    for key, tensor in torch_weights.items():
        torch.testing.assert_close(scratch_weights[key], tensor, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
def test_eps_placement_differs_from_torch_when_eps_matters(name: str) -> None:
    spec = OptimizerSpec(name=name, lr=0.01, eps=1e-2)
    torch_weights = _train(spec)
    scratch_weights = _train(spec.model_copy(update={"implementation": "scratch"}))
    assert any(not torch.allclose(scratch_weights[k], v, atol=1e-6) for k, v in torch_weights.items())


def _run_rule(rule, hp: dict[str, float], steps: int = 20) -> list[float]:
    """The book's 2-D test function f = 0.1·x1² + 2·x2² from (−5, −2), in float64."""
    x = torch.tensor([-5.0, -2.0], dtype=torch.float64, requires_grad=True)
    states: list[dict[str, torch.Tensor]] = [{}]
    for _ in range(steps):
        x.grad = None
        (0.1 * x[0] ** 2 + 2 * x[1] ** 2).backward()
        with torch.no_grad():
            rule([x], states, hp)
    return x.detach().tolist()


def test_momentum_rule_reproduces_the_books_trajectory() -> None:
    hp = {"lr": 0.6, "momentum": 0.5, "nesterov": False, "weight_decay": 0.0}
    assert _run_rule(sgd, hp) == pytest.approx([0.007188, 0.002553], abs=1e-6)


def test_adagrad_rule_reproduces_the_books_trajectory() -> None:
    hp = {"lr": 0.4, "eps": 1e-6, "weight_decay": 0.0}
    assert _run_rule(adagrad, hp) == pytest.approx([-2.382563, -0.158591], abs=1e-6)


def test_scratch_optimizer_state_dict_round_trips() -> None:
    spec = OptimizerSpec(name="adam", lr=0.01, implementation="scratch")
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(model.parameters(), spec)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    again = build_optimizer(model.parameters(), spec)
    again.load_state_dict(optimizer.state_dict())
    assert isinstance(again, ScratchOptimizer)
    state = again.state[next(iter(model.parameters()))]
    assert state["t"] == 1 and torch.equal(state["v"], optimizer.state[next(iter(model.parameters()))]["v"])


def test_build_optimizer_picks_torch_classes_with_the_specs_settings() -> None:
    params = list(nn.Linear(2, 2).parameters())
    opt = build_optimizer(params, OptimizerSpec(name="rmsprop", lr=0.01, gamma=0.8, momentum=0.5))
    assert isinstance(opt, torch.optim.RMSprop)
    assert opt.param_groups[0]["alpha"] == 0.8 and opt.param_groups[0]["momentum"] == 0.5
    assert isinstance(build_optimizer(params, OptimizerSpec(name="adamw", lr=0.1)), torch.optim.AdamW)


@pytest.mark.parametrize(
    "spec",
    [
        OptimizerSpec(name="sgd", lr=0.1, nesterov=True),
        OptimizerSpec(name="adam", lr=0.1, momentum=0.9),
        OptimizerSpec(name="rmsprop", lr=0.1, momentum=0.9, implementation="scratch"),
    ],
)
def test_inconsistent_optimizer_settings_are_refused(spec: OptimizerSpec) -> None:
    with pytest.raises(InvalidInput):
        build_optimizer(nn.Linear(2, 2).parameters(), spec)


def test_a_resolved_optimizer_has_a_learning_rate() -> None:
    with pytest.raises(ValidationError, match="lr"):
        OptimizerSpec(name="sgd")  # type: ignore[call-arg]
    assert OptimizerRequest(name="sgd").lr is None  # as submitted: the book's rate is filled in at admission


@pytest.mark.parametrize("field", ["lr", "weight_decay", "eps"])
def test_optimizer_spec_refuses_an_infinite_number(field: str) -> None:
    with pytest.raises(ValidationError, match="finite"):
        OptimizerRequest.model_validate_json(f'{{"{field}": 1e999}}')  # valid JSON that parses as inf
