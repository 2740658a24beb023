"""Settings: grouped per subsystem, read from the same flat CONVLAB_* variables as before the grouping."""

import pytest
from pydantic import ValidationError

from service.config import QueueSettings, Settings

VARIABLES = {
    "CONVLAB_LEASE_SECONDS": ("queue", "lease_seconds", 7.0),
    "CONVLAB_KEEP_CHECKPOINTS": ("queue", "keep_checkpoints", 5),
    "CONVLAB_MAX_EPOCHS": ("jobs", "max_epochs", 3),
    "CONVLAB_PREDICT_MAX_IMAGES": ("serving", "predict_max_images", 9),
    "CONVLAB_EVENTS_POLL_SECONDS": ("serving", "events_poll_seconds", 0.25),
    "CONVLAB_OPTLAB_MAX_STEPS": ("lab", "max_steps", 11),
}


def test_each_group_reads_its_flat_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, (_, _, value) in VARIABLES.items():
        monkeypatch.setenv(variable, str(value))
    monkeypatch.setenv("CONVLAB_DEVICE", "cpu")
    settings = Settings()
    assert settings.device == "cpu"
    for group, field, value in VARIABLES.values():
        assert getattr(getattr(settings, group), field) == value


def test_a_flat_keyword_from_before_the_grouping_is_refused() -> None:
    with pytest.raises(ValidationError, match="lease_seconds"):
        Settings(lease_seconds=5)
    with pytest.raises(ValidationError, match="lease_secs"):
        QueueSettings(lease_secs=5)
