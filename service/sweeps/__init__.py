"""Sweeps and reproducibility: hyper-parameter searches whose trials are ordinary jobs, and exact reruns.

`space` parses and checks a search space against the job spec, `study` rebuilds an Optuna study from the stored
trials (the database is the one source of truth), `advance` creates, advances, extends and cancels sweeps,
`pruning` judges trials at epoch ends, `compare` aligns jobs' histories, `clone` requeues a job's spec, `plots`
draws a sweep. The worker calls `judge_epoch` and `advance_sweep`; the API calls the rest.
"""

from service.sweeps.advance import advance_sweep
from service.sweeps.pruning import Decision, judge_epoch

__all__ = ["Decision", "advance_sweep", "judge_epoch"]
