"""The book's optimizer comparison on linear regression (the seed's `get_data_ch7` and `train_ch7`).

Set-up: standardize every column of all 1,503 airfoil rows (population std), keep the first 1,500, model
X·w + b with w ~ N(0, 0.01²) and b = 0, loss (ŷ − y)²/2 averaged over the minibatch, shuffled minibatches,
and the full-data loss recorded at the start and whenever (batch index + 1)·batch_size is a multiple of 100.
Computed in float64 so the loss can be compared with the exact least-squares optimum.
"""

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from service.errors import DatasetUnavailable, InvalidInput
from service.optlab.budget import check_budget
from service.optlab.optimizers import (
    CURVATURE_OPTIMIZERS,
    RULES,
    build_torch_optimizer,
    learning_rate,
    resolve,
    state_names,
)
from service.optlab.requests import Dataset, OptimizerConfig
from service.optlab.results import CurvePoint, LinregRun

AIRFOIL_FILE = Path("airfoil") / "airfoil_self_noise.dat"
KEEP_ROWS = 1500
RECORD_EVERY = 100


def load_dataset(dataset: Dataset, data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized features (1500, 5) and labels (1500,) in float64."""
    if dataset == "airfoil":
        path = data_dir / AIRFOIL_FILE
        if not path.is_file():
            raise DatasetUnavailable(f"airfoil data not found at {path}")
        data = np.loadtxt(path, delimiter="\t", dtype=np.float64)
    else:
        data = _synthetic_rows()
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    table = torch.from_numpy(data[:KEEP_ROWS])
    return table[:, :-1].contiguous(), table[:, -1].contiguous()


def _synthetic_rows() -> np.ndarray:
    """1,503 rows shaped like airfoil: five features and a noisy linear label (always the same data)."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1503, 5))
    labels = features @ np.array([2.0, -3.4, 1.5, 0.7, -1.1]) + 4.2 + rng.normal(scale=2.0, size=1503)
    return np.column_stack([features, labels])


def optimum_loss(features: torch.Tensor, labels: torch.Tensor) -> float:
    """The exact least-squares minimum of mean((Xw + b − y)²)/2."""
    design = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, labels[:, None]).solution
    return float(((design @ solution).squeeze(1) - labels).pow(2).mean() / 2)


def _loss(features: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((features @ w).squeeze(1) + b - labels).pow(2).div(2).mean()


def train_linreg(
    features: torch.Tensor,
    labels: torch.Tensor,
    config: OptimizerConfig,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
) -> LinregRun:
    """Train with one optimizer; the loss curve, final loss and seconds per epoch."""
    if not 1 <= batch_size <= len(features):
        raise InvalidInput(f"batch_size must be between 1 and {len(features)}")
    generator = torch.Generator().manual_seed(seed)
    w = (torch.randn((features.shape[1], 1), generator=generator, dtype=torch.float64) * 0.01).requires_grad_()
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    update = _updater(config, [w, b])
    curve = [_record(0, features, labels, w, b)]
    seconds: list[float] = []
    seen = 0
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(features), generator=generator)
        for batch_index, rows in enumerate(torch.split(order, batch_size)):
            check_budget()
            loss = _loss(features[rows], labels[rows], w, b)
            w.grad = b.grad = None
            loss.backward()  # type: ignore[no-untyped-call]
            update()
            seen += len(rows)
            if (batch_index + 1) * batch_size % RECORD_EVERY == 0:
                curve.append(_record(seen, features, labels, w, b))
        seconds.append(time.perf_counter() - start)
    if curve[-1]["examples"] != seen:
        curve.append(_record(seen, features, labels, w, b))
    return _result(config, curve, seconds)


def _result(config: OptimizerConfig, curve: list[CurvePoint], seconds: list[float]) -> LinregRun:
    final = curve[-1]["loss"]
    return {
        "optimizer": config.display,
        "config": config.model_dump(exclude_none=True),
        "curve": curve,
        "final_loss": final,
        "diverged": final is None,
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else 0.0,
    }


def _record(seen: int, features: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> CurvePoint:
    with torch.no_grad():
        loss = float(_loss(features, labels, w, b))
    return {"examples": seen, "epoch": seen / len(features), "loss": loss if math.isfinite(loss) else None}


def _updater(config: OptimizerConfig, params: list[torch.Tensor]) -> Callable[[], object]:
    """A no-argument callable applying one update to `params` from their .grad."""
    if config.name.startswith("torch:"):
        return build_torch_optimizer(config, params).step
    hyper = resolve(config)
    if hyper.name in CURVATURE_OPTIMIZERS:
        raise InvalidInput(f"{hyper.name} needs a Hessian; linear regression compares first-order methods")
    rule = RULES[hyper.name]
    states = [{name: torch.zeros_like(p) for name in state_names(hyper.name)} for p in params]
    counter = [0]

    def update() -> None:
        counter[0] += 1
        t = counter[0]
        lr = learning_rate(hyper, t)
        with torch.no_grad():
            for p, state in zip(params, states, strict=True):
                assert p.grad is not None
                p.copy_(rule(hyper, p, p.grad, state, t, lr))

    return update
