"""A Callbacks implementation that records everything, and can ask for a stop after N batch boundaries."""

from service.training import Callbacks, Checkpoint, EpochRecord, Progress, RunInfo, StepRecord


class Recorder(Callbacks):
    def __init__(self, stop_after_polls: int | None = None, stop_after_epoch: int | None = None) -> None:
        self.info: RunInfo | None = None
        self.steps: list[StepRecord] = []
        self.progress: list[Progress] = []
        self.epochs: list[EpochRecord] = []
        self.checkpoints: list[Checkpoint] = []
        self.polls = 0
        self.stop_after_polls = stop_after_polls
        self.stop_after_epoch = stop_after_epoch

    def on_start(self, info: RunInfo) -> None:
        self.info = info

    def on_step(self, record: StepRecord) -> None:
        self.steps.append(record)

    def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)

    def on_epoch(self, record: EpochRecord) -> None:
        self.epochs.append(record)

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> bool:
        self.polls += 1
        if self.stop_after_polls is not None and self.polls > self.stop_after_polls:
            return True
        return self.stop_after_epoch is not None and len(self.epochs) >= self.stop_after_epoch


def without_timing(record: EpochRecord) -> tuple[float, ...]:
    """The metrics of an epoch that must reproduce exactly (not seconds or throughput)."""
    return (record.epoch, record.train_loss, record.train_acc, record.test_loss, record.test_acc, record.lr)
