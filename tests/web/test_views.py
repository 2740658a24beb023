"""service.web.views: spec differences, outcomes and job ids, without HTTP."""

from service.records import EpochRecord, History, StepRecord
from service.web import views


def _epoch(epoch: int, test_acc: float) -> EpochRecord:
    return EpochRecord(epoch, 1.0 / epoch, 0.5, 1.2 / epoch, test_acc, 0.1, 2.0, 1000.0)


def test_outcome_gives_final_and_best_epochs_and_the_lowest_loss():
    history = History(
        steps=[StepRecord(1, 1, 32, 2.0), StepRecord(2, 1, 64, 0.7), StepRecord(3, 2, 96, 0.9)],
        epochs=[_epoch(1, 0.6), _epoch(2, 0.8), _epoch(3, 0.7)],
    )
    result = views.outcome(history)
    assert result.final == _epoch(3, 0.7) and (result.best_epoch, result.best_test_acc) == (2, 0.8)
    assert result.lowest_loss == 0.7
    assert views.outcome(History(steps=[], epochs=[])).final is None


def test_book_presets_cover_every_architecture_with_its_rate():
    presets = views.book_presets()
    assert {"bn_lenet", "resnet18", "lenet"} <= set(presets)
    assert all(p["optimizer.lr"] > 0 and p["batch_size"] == 256 and p["epochs"] == 10 for p in presets.values())
