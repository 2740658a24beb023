"""Early stopping: the watched test metric, its best value so far, and when patience has run out.

The best value and its epoch live in `TrainState` (and so in every checkpoint), so a resumed run stops at the same
epoch an uninterrupted one would.
"""

from service.jobspec.spec import EarlyStopping
from service.records import EpochRecord


def improved(rule: EarlyStopping, value: float, best: float | None) -> bool:
    """Whether `value` beats `best` by more than `min_delta` (higher accuracy, lower loss)."""
    if best is None:
        return True
    return value > best + rule.min_delta if rule.metric == "test_acc" else value < best - rule.min_delta


def watch(rule: EarlyStopping, record: EpochRecord, best: float | None, best_epoch: int) -> tuple[float | None, int]:
    """The (best value, its epoch) after the epoch `record` ended."""
    value = float(getattr(record, rule.metric))
    return (value, record.epoch) if improved(rule, value, best) else (best, best_epoch)


def stop_reason(rule: EarlyStopping, epoch: int, best: float | None, best_epoch: int) -> str | None:
    """Why the run ends after `epoch`, or None while patience lasts."""
    if epoch - best_epoch < rule.patience:
        return None
    return (
        f"stopped early after epoch {epoch}: {rule.metric} did not improve by more than {rule.min_delta:g} for "
        f"{rule.patience} epoch(s); best {best:.4f} at epoch {best_epoch}"
    )
