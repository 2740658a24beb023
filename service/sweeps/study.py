"""Optuna on convlab's tables: an in-memory study rebuilt from the stored trials each time it is needed.

The database is the one source of truth. A study holds nothing between calls, so no Optuna storage or daemon
exists: the samplers see every stored trial (finished ones with their metric, running ones with their
parameters), and each trial number gets a sampler seeded from (sweep seed, number), so a sweep's proposals
depend on its seed and history alone.
"""

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from service.jobspec.status import JobStatus
from service.storage.orm import Sweep
from service.sweeps.definition import PrunerSpec
from service.sweeps.space import Params, Space

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class TrialView:
    """A stored trial as the samplers and pruners see it."""

    number: int
    job_id: int
    params: Params
    status: JobStatus
    pruned_epoch: int | None
    intermediate: dict[int, float]  # epoch -> the sweep's metric
    pruner_state: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> TrialState:
        """The Optuna state: pruned, complete, failed (failed or cancelled) or running (queued or running)."""
        if self.pruned_epoch is not None:
            return TrialState.PRUNED
        if self.status is JobStatus.succeeded:
            return TrialState.COMPLETE
        if self.status.finished:
            return TrialState.FAIL
        return TrialState.RUNNING

    @property
    def value(self) -> float | None:
        """The metric at the last recorded epoch; None before the first epoch ends."""
        if not self.intermediate:
            return None
        return self.intermediate[max(self.intermediate)]


def _derived_seed(seed: int, number: int) -> int:
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_sampler(name: str, seed: int, number: int) -> optuna.samplers.BaseSampler:
    """The sampler that proposes trial `number` of a sweep seeded with `seed`."""
    trial_seed = _derived_seed(seed, number)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=trial_seed)


def make_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    """The Optuna pruner for `spec` (NopPruner for `none`)."""
    if spec.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_epochs)
    if spec.name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_epochs, reduction_factor=spec.reduction_factor
        )
    return optuna.pruners.NopPruner()


def distributions(sweep: Sweep, space: Space) -> dict[str, optuna.distributions.BaseDistribution]:
    """The sweep's space as Optuna distributions (a grid's axes as categories)."""
    if sweep.sampler == "grid":
        axes = {path: space.grid_points(path) for path in space.dimensions}
        return {path: optuna.distributions.CategoricalDistribution(points) for path, points in axes.items()}
    return space.distributions()


def _frozen(trial: TrialView, dists: dict[str, optuna.distributions.BaseDistribution]) -> FrozenTrial:
    state = trial.state
    value = trial.value if state is TrialState.COMPLETE else None
    if state is TrialState.COMPLETE and (value is None or not math.isfinite(value)):
        state, value = TrialState.FAIL, None
    known = {p: v for p, v in trial.params.items() if p in dists}
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params=known,
        distributions={p: dists[p] for p in known},
        intermediate_values={e: v for e, v in trial.intermediate.items() if math.isfinite(v)},
        system_attrs=dict(trial.pruner_state),
        user_attrs={"number": trial.number, "job_id": trial.job_id},
    )


def build_study(
    sweep: Sweep,
    trials: list[TrialView],
    dists: dict[str, optuna.distributions.BaseDistribution],
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """An in-memory study holding `trials` in number order."""
    direction = StudyDirection.MAXIMIZE if sweep.goal == "max" else StudyDirection.MINIMIZE
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
    for trial in sorted(trials, key=lambda t: t.number):
        study.add_trial(_frozen(trial, dists))
    return study


def ask_params(sweep: Sweep, space: Space, trials: list[TrialView], number: int) -> Params:
    """The parameters of trial `number`: the grid's next point, or what the seeded sampler proposes."""
    if sweep.sampler == "grid":
        return space.grid()[number]
    dists = space.distributions()
    study = build_study(sweep, trials, dists, sampler=make_sampler(sweep.sampler, sweep.seed, number))
    asked = study.ask(dists)
    return {path: _plain(asked.params[path]) for path in space.dimensions}


def _plain(value: Any) -> Any:
    # numpy scalars from the samplers become JSON numbers
    return value.item() if hasattr(value, "item") else value
