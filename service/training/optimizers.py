"""Optimizers: torch.optim's, or the book's hand-written update rules wrapped as a torch Optimizer.

The hand-written rules keep the seed's signature `rule(params, states, hyperparams)` and the book's formulas
(ε inside the square root for Adagrad and RMSProp, as `../shared/docs/anchors.md` notes); wrapping them in
`ScratchOptimizer` gives them `state_dict()` so checkpoints and exact resume work the same for both kinds.
"""

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from service.errors import InvalidInput
from service.jobspec.spec import OptimizerSpec

Rule = Callable[[list[Tensor], list[dict[str, Any]], dict[str, Any]], None]


def _grad(p: Tensor, hp: dict[str, Any]) -> Tensor:
    """The gradient with L2 weight decay folded in (as torch.optim does for every rule but AdamW)."""
    assert p.grad is not None
    return p.grad.add(p, alpha=hp["weight_decay"]) if hp["weight_decay"] else p.grad


def sgd(params: list[Tensor], states: list[dict[str, Any]], hp: dict[str, Any]) -> None:
    """Minibatch SGD, with momentum `v ← βv + g; x ← x − ηv` when β > 0 (Nesterov: step along g + βv)."""
    for p, state in zip(params, states, strict=True):
        g = _grad(p, hp)
        if hp["momentum"]:
            v = state.setdefault("v", torch.zeros_like(p))
            v.mul_(hp["momentum"]).add_(g)
            g = g.add(v, alpha=hp["momentum"]) if hp["nesterov"] else v
        p.sub_(hp["lr"] * g)


def adagrad(params: list[Tensor], states: list[dict[str, Any]], hp: dict[str, Any]) -> None:
    """Adagrad: `s ← s + g²; x ← x − η·g/√(s + ε)`."""
    for p, state in zip(params, states, strict=True):
        g = _grad(p, hp)
        s = state.setdefault("s", torch.zeros_like(p))
        s.add_(g * g)
        p.sub_(hp["lr"] * g / torch.sqrt(s + hp["eps"]))


def rmsprop(params: list[Tensor], states: list[dict[str, Any]], hp: dict[str, Any]) -> None:
    """RMSProp: `s ← γs + (1−γ)g²; x ← x − η·g/√(s + ε)`."""
    for p, state in zip(params, states, strict=True):
        g = _grad(p, hp)
        s = state.setdefault("s", torch.zeros_like(p))
        s.mul_(hp["gamma"]).add_((1 - hp["gamma"]) * g * g)
        p.sub_(hp["lr"] * g / torch.sqrt(s + hp["eps"]))


def adadelta(params: list[Tensor], states: list[dict[str, Any]], hp: dict[str, Any]) -> None:
    """Adadelta: `s ← ρs + (1−ρ)g²; g' ← √((Δx + ε)/(s + ε))·g; x ← x − η·g'; Δx ← ρΔx + (1−ρ)g'²` (book: η = 1)."""
    rho = hp["rho"]
    for p, state in zip(params, states, strict=True):
        g = _grad(p, hp)
        s = state.setdefault("s", torch.zeros_like(p))
        delta = state.setdefault("delta", torch.zeros_like(p))
        s.mul_(rho).add_((1 - rho) * g * g)
        g_prime = torch.sqrt(delta + hp["eps"]) / torch.sqrt(s + hp["eps"]) * g
        p.sub_(hp["lr"] * g_prime)
        delta.mul_(rho).add_((1 - rho) * g_prime * g_prime)


def adam(params: list[Tensor], states: list[dict[str, Any]], hp: dict[str, Any]) -> None:
    """Adam with bias correction: `x ← x − η·v̂/(√ŝ + ε)`; AdamW's decoupled decay when `decoupled` is set."""
    beta1, beta2 = hp["beta1"], hp["beta2"]
    for p, state in zip(params, states, strict=True):
        if hp.get("decoupled"):
            assert p.grad is not None
            p.mul_(1 - hp["lr"] * hp["weight_decay"])
            g = p.grad
        else:
            g = _grad(p, hp)
        v = state.setdefault("v", torch.zeros_like(p))
        s = state.setdefault("s", torch.zeros_like(p))
        t = state["t"] = state.get("t", 0) + 1
        v.mul_(beta1).add_((1 - beta1) * g)
        s.mul_(beta2).add_((1 - beta2) * g * g)
        v_hat = v / (1 - beta1**t)
        s_hat = s / (1 - beta2**t)
        p.sub_(hp["lr"] * v_hat / (torch.sqrt(s_hat) + hp["eps"]))


_RULES: dict[str, Rule] = {
    "sgd": sgd,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
    "adam": adam,
    "adamw": adam,
}


class ScratchOptimizer(torch.optim.Optimizer):
    """Runs one of the book's rules over each parameter group; state lives in `self.state` like torch's."""

    def __init__(self, params: Iterable[Tensor], rule: str, hyperparams: dict[str, Any]) -> None:
        if rule not in _RULES:
            raise InvalidInput(f"no hand-written rule {rule!r}; choose one of {sorted(_RULES)}")
        self.rule = rule
        super().__init__(params, {**hyperparams, "decoupled": rule == "adamw"})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        """Apply the rule to every parameter that has a gradient."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            _RULES[self.rule](params, [self.state[p] for p in params], group)


def _check(spec: OptimizerSpec) -> None:
    if spec.nesterov and (spec.name != "sgd" or spec.momentum == 0):
        raise InvalidInput("nesterov needs optimizer sgd with momentum > 0")
    if spec.momentum and spec.name not in ("sgd", "rmsprop"):
        raise InvalidInput(f"momentum applies to sgd and rmsprop, not {spec.name}")
    if spec.momentum and spec.name == "rmsprop" and spec.implementation == "scratch":
        raise InvalidInput("the hand-written rmsprop has no momentum; use implementation 'torch'")


def build_optimizer(params: Iterable[Tensor], spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The optimizer a job asks for, at the resolved learning rate `spec.lr`."""
    _check(spec)
    lr, wd = spec.lr, spec.weight_decay
    if spec.implementation == "scratch":
        hyperparams = {**spec.model_dump(exclude={"name", "implementation"}), "lr": lr}
        return ScratchOptimizer(params, spec.name, hyperparams)
    optim = torch.optim
    if spec.name == "sgd":
        return optim.SGD(params, lr=lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=wd)
    if spec.name == "adagrad":
        return optim.Adagrad(params, lr=lr, eps=spec.eps, weight_decay=wd)
    if spec.name == "rmsprop":
        return optim.RMSprop(params, lr=lr, alpha=spec.gamma, eps=spec.eps, weight_decay=wd, momentum=spec.momentum)
    if spec.name == "adadelta":
        return optim.Adadelta(params, lr=lr, rho=spec.rho, eps=spec.eps, weight_decay=wd)
    betas = (spec.beta1, spec.beta2)
    if spec.name == "adam":
        return optim.Adam(params, lr=lr, betas=betas, eps=spec.eps, weight_decay=wd)
    return optim.AdamW(params, lr=lr, betas=betas, eps=spec.eps, weight_decay=wd)
