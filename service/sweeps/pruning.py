"""Pruning at epoch ends: the sweep's Optuna pruner judges a trial against the others, and the decision is an event.

`judge_epoch` runs inside the worker's fenced epoch transaction, so the epoch's metrics, the decision's event
and the pruner's per-trial notes (ASHA's rungs) are stored together or not at all.
"""

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from optuna.trial import TrialState
from sqlalchemy.orm import Session

from service.storage import sweeps as store
from service.storage.jobs import add_event
from service.storage.orm import Job, SweepTrial
from service.sweeps.advance import load_trials
from service.sweeps.definition import PrunerSpec
from service.sweeps.space import Space
from service.sweeps.study import build_study, distributions, make_pruner


@dataclass(frozen=True)
class Decision:
    """One pruning decision: the trial's value at `epoch`, the rung and the cutoff it was compared with."""

    pruner: str
    epoch: int
    rung: int
    value: float | None
    cutoff: float | None
    prune: bool


def judge_epoch(session: Session, job: Job, *, epoch: int) -> Decision | None:
    """Judge the trial run by `job` after `epoch` (already flushed); None outside a sweep or without a pruner.

    Records a "prune" event with the decision and keeps the pruner's notes on the trial.
    """
    trial = store.trial_of_job(session, job.id)
    if trial is None:
        return None
    sweep = store.get_sweep(session, trial.sweep_id)
    spec = PrunerSpec.model_validate(sweep.pruner)
    if spec.name == "none":
        return None
    views = load_trials(session, sweep)
    dists = distributions(sweep, Space.parse(sweep.space))
    study = build_study(sweep, views, dists, pruner=make_pruner(spec))
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.user_attrs["number"] == trial.number)
    if frozen.last_step is None:
        return None
    prune = bool(study.pruner.prune(study, frozen))  # a numpy bool from some pruners
    notes = study.get_trials(deepcopy=False)[frozen.number].system_attrs
    decision = _describe(spec, study, frozen.intermediate_values, notes, epoch=epoch, prune=prune)
    _record(session, job, trial, decision, notes)
    return decision


def _describe(
    spec: PrunerSpec, study: Any, values: dict[int, float], notes: dict[str, Any], *, epoch: int, prune: bool
) -> Decision:
    maximize = study.direction.name == "MAXIMIZE"
    value = values.get(epoch)
    if spec.name == "asha":
        rungs = sorted(int(k.rsplit("_", 1)[1]) for k in notes if k.startswith("completed_rung_"))
        rung = rungs[-1] if rungs else 0
        cutoff = _asha_cutoff(study, f"completed_rung_{rung}", spec.reduction_factor, maximize) if rungs else None
        return Decision("asha", epoch, rung, value, cutoff, prune)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    at_epoch = [t.intermediate_values[epoch] for t in completed if epoch in t.intermediate_values]
    cutoff = statistics.median(at_epoch) if at_epoch else None
    return Decision("median", epoch, epoch, value, cutoff, prune)


def _asha_cutoff(study: Any, key: str, reduction_factor: int, maximize: bool) -> float | None:
    """The worst value still promoted from the rung: the top 1/reduction_factor of the values recorded there."""
    recorded = [t.system_attrs[key] for t in study.get_trials(deepcopy=False) if key in t.system_attrs]
    values = sorted(recorded, reverse=maximize)
    if not values:
        return None
    return float(values[max(len(values) // reduction_factor, 1) - 1])


def _record(session: Session, job: Job, trial: SweepTrial, decision: Decision, notes: dict[str, Any]) -> None:
    trial.pruner_state = {k: v for k, v in notes.items() if isinstance(v, int | float | str) and _finite(v)}
    if decision.prune:
        trial.pruned_epoch = decision.epoch
    add_event(session, job, kind="prune", payload=asdict(decision))
    session.flush()


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
