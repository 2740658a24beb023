"""The optimization chapter's update rules, written once for Python floats and torch tensors alike.

Each rule updates one coordinate (or one tensor) from its gradient and its state, using only arithmetic and
`** 0.5`, so the trajectory engine runs it on floats and the linear-regression trainer on tensors. Defaults
are the book's: states start at 0, ε = 1e-6 inside the square root for Adagrad and RMSProp, ε = 1e-5 for
Adadelta, and for Adam ε = 1e-6 added to √ŝ as the seed's `adam` does.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from service.errors import InvalidInput
from service.optlab.requests import OptimizerConfig

# A float (trajectories) or a torch.Tensor (linear regression): the rules only use arithmetic and ** 0.5.
Value = Any


DEFAULTS: dict[str, dict[str, float]] = {
    "gd": {"lr": 0.1},
    "sgd": {"lr": 0.1, "noise_std": 1.0},
    "momentum": {"lr": 0.1, "momentum": 0.5},
    "nesterov": {"lr": 0.1, "momentum": 0.5},
    "adagrad": {"lr": 0.4, "eps": 1e-6},
    "rmsprop": {"lr": 0.4, "gamma": 0.9, "eps": 1e-6},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-5},
    "adam": {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "eps_in_sqrt": True},
    "newton": {"lr": 1.0},
    "preconditioned_gd": {"lr": 0.1},
}
CURVATURE_OPTIMIZERS = ("newton", "preconditioned_gd")
TORCH_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "rprop": torch.optim.Rprop,
    "asgd": torch.optim.ASGD,
}


@dataclass(frozen=True)
class Hyper:
    """Resolved hyperparameters of one of our optimizers."""

    name: str
    lr: float
    momentum: float = 0.0
    gamma: float = 0.0
    rho: float = 0.0
    beta1: float = 0.0
    beta2: float = 0.0
    eps: float = 0.0
    eps_in_sqrt: bool = True
    noise_std: float = 0.0
    schedule: str = "constant"


def resolve(config: OptimizerConfig) -> Hyper:
    """The config with the book's defaults filled in; raises InvalidInput for unknown names."""
    if config.name not in DEFAULTS:
        raise InvalidInput(f"unknown optimizer {config.name!r}; known: {', '.join(known_names())}")
    given = {k: v for k, v in config.model_dump().items() if v is not None and k in Hyper.__dataclass_fields__}
    return Hyper(**(DEFAULTS[config.name] | given))


def known_names() -> list[str]:
    """Every optimizer name a request may use."""
    return [*DEFAULTS, *(f"torch:{n}" for n in TORCH_OPTIMIZERS)]


def schedule_factor(schedule: str, t: int) -> float:
    """The book's learning-rate multiplier at counter value t."""
    if schedule == "exponential":
        return math.exp(-0.1 * t)
    if schedule == "polynomial":
        return float((1 + 0.1 * t) ** (-0.5))
    return 1.0


def learning_rate(hyper: Hyper, step: int) -> float:
    """η at the 1-based update `step`: the book's counter starts at 1 and advances before each use, so t = step + 1."""
    return hyper.lr if hyper.schedule == "constant" else hyper.lr * schedule_factor(hyper.schedule, step + 1)


def state_names(name: str) -> tuple[str, ...]:
    """The per-coordinate state an optimizer keeps (all start at 0)."""
    return {
        "momentum": ("v",),
        "nesterov": ("v",),
        "adagrad": ("s",),
        "rmsprop": ("s",),
        "adadelta": ("s", "delta"),
        "adam": ("v", "s"),
    }.get(name, ())


Rule = Callable[[Hyper, Value, Value, dict[str, Value], int, float], Value]


def _gd(h: Hyper, x: Value, g: Value, s: dict[str, Value], t: int, lr: float) -> Value:
    return x - lr * g


def _momentum(h: Hyper, x: Value, g: Value, s: dict[str, Value], t: int, lr: float) -> Value:
    s["v"] = h.momentum * s["v"] + g
    return x - lr * s["v"]


def _nesterov(h: Hyper, x: Value, g: Value, s: dict[str, Value], t: int, lr: float) -> Value:
    s["v"] = h.momentum * s["v"] + g
    return x - lr * (g + h.momentum * s["v"])  # torch.optim.SGD(nesterov=True)


def _adagrad(h: Hyper, x: Value, g: Value, s: dict[str, Value], t: int, lr: float) -> Value:
    s["s"] = s["s"] + g * g
    return x - lr * g / (s["s"] + h.eps) ** 0.5


def _rmsprop(h: Hyper, x: Value, g: Value, s: dict[str, Value], t: int, lr: float) -> Value:
    s["s"] = h.gamma * s["s"] + (1 - h.gamma) * g * g
    return x - lr * g / (s["s"] + h.eps) ** 0.5


def _adadelta(h: Hyper, x: Value, g: Value, s: dict[str, Value], t: int, lr: float) -> Value:
    s["s"] = h.rho * s["s"] + (1 - h.rho) * g * g
    change = (s["delta"] + h.eps) ** 0.5 / (s["s"] + h.eps) ** 0.5 * g
    s["delta"] = h.rho * s["delta"] + (1 - h.rho) * change * change
    return x - lr * change


def _adam(h: Hyper, x: Value, g: Value, s: dict[str, Value], t: int, lr: float) -> Value:
    s["v"] = h.beta1 * s["v"] + (1 - h.beta1) * g
    s["s"] = h.beta2 * s["s"] + (1 - h.beta2) * g * g
    v_hat = s["v"] / (1 - h.beta1**t)
    s_hat = s["s"] / (1 - h.beta2**t)
    denominator = (s_hat + h.eps) ** 0.5 if h.eps_in_sqrt else s_hat**0.5 + h.eps
    return x - lr * v_hat / denominator


RULES: dict[str, Rule] = {
    "gd": _gd,
    "sgd": _gd,  # the noise is added to the gradient before the rule
    "momentum": _momentum,
    "nesterov": _nesterov,
    "adagrad": _adagrad,
    "rmsprop": _rmsprop,
    "adadelta": _adadelta,
    "adam": _adam,
}


def build_torch_optimizer(config: OptimizerConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The real torch.optim class for `torch:<name>`, given only the hyperparameters the client set."""
    name = config.name.removeprefix("torch:")
    cls = TORCH_OPTIMIZERS.get(name)
    if cls is None:
        raise InvalidInput(f"unknown optimizer {config.name!r}; known: {', '.join(known_names())}")
    kwargs: dict[str, Any] = {}
    for ours, theirs in (("lr", "lr"), ("momentum", "momentum"), ("nesterov", "nesterov"), ("eps", "eps")):
        if getattr(config, ours) is not None:
            kwargs[theirs] = getattr(config, ours)
    if config.gamma is not None:
        kwargs["alpha"] = config.gamma
    if config.rho is not None:
        kwargs["rho"] = config.rho
    if config.beta1 is not None or config.beta2 is not None:
        kwargs["betas"] = (
            0.9 if config.beta1 is None else config.beta1,
            0.999 if config.beta2 is None else config.beta2,
        )
    try:
        return cls(params, **kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{config.name}: {exc}") from None
