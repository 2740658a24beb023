"""Learning-rate schedules as pure functions of the global step, so resuming needs no scheduler state."""

import math

from service.jobspec.spec import SchedulerSpec


def lr_at(spec: SchedulerSpec, *, base_lr: float, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate for update number `step` (0-based) of a run of `epochs` epochs.

    step and exponential decay at epoch boundaries; cosine anneals per step from `base_lr` towards 0 at the
    end of the run; linear warm-up scales the result from 1/10 up to 1 over `warmup_epochs` (fractional).
    """
    elapsed = step / steps_per_epoch  # epochs done, fractional
    epoch = step // steps_per_epoch  # 0-based index of the current epoch
    if spec.name == "constant":
        lr = base_lr
    elif spec.name == "step":
        lr = base_lr * spec.gamma ** (epoch // spec.step_size)
    elif spec.name == "exponential":
        lr = base_lr * spec.gamma**epoch
    else:  # cosine
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * min(elapsed / epochs, 1.0)))
    if spec.warmup_epochs > 0 and elapsed < spec.warmup_epochs:
        lr *= 0.1 + 0.9 * elapsed / spec.warmup_epochs
    return lr
