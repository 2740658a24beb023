"""A logged step and a finished epoch: the one spelling of each, shared by training, storage, the API and plots.

Plain dataclasses with no dependencies, so that importing them (the migrations do, through the ORM) costs
nothing. Storage converts its rows to and from them in service/storage/orm.py.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StepRecord:
    """The training loss of one batch, recorded every `log_every` examples; steps are global and 1-based."""

    step: int
    epoch: int
    examples_seen: int
    loss: float


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one finished epoch (1-based); accuracies are fractions in [0, 1]."""

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float
    images_per_sec: float


@dataclass(frozen=True)
class History:
    """A run's history as stored: loss per logged step and metrics per finished epoch, both in order."""

    steps: list[StepRecord]
    epochs: list[EpochRecord]
