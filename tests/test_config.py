"""Settings: grouped per subsystem, read from the same flat CONVLAB_* variables as before the grouping."""

import pytest
from pydantic import ValidationError

from service.config import AccessSettings, AuthMode, QueueSettings, Settings, variable_names

VARIABLES = {
    "CONVLAB_LEASE_SECONDS": ("queue", "lease_seconds", 7.0),
    "CONVLAB_KEEP_CHECKPOINTS": ("queue", "keep_checkpoints", 5),
    "CONVLAB_MAX_EPOCHS": ("jobs", "max_epochs", 3),
    "CONVLAB_PREDICT_MAX_IMAGES": ("serving", "predict_max_images", 9),
    "CONVLAB_EVENTS_POLL_SECONDS": ("serving", "events_poll_seconds", 0.25),
    "CONVLAB_OPTLAB_MAX_STEPS": ("lab", "max_steps", 11),
    "CONVLAB_LAB_MAX_SECONDS": ("access", "lab_max_seconds", 2.5),
    "CONVLAB_MAX_ACTIVE_JOBS": ("access", "max_active_jobs", 4),
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


@pytest.mark.parametrize(
    ("mode", "host", "required"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "127.0.0.2", False),
        ("auto", "::1", False),
        ("auto", "localhost", False),
        ("auto", "0.0.0.0", True),
        ("auto", "::", True),
        ("auto", "192.168.1.5", True),
        ("auto", "convlab.example", True),
        ("auto", None, True),  # an app built without `convlab serve` does not know its address: fail closed
        ("off", "0.0.0.0", False),
        ("required", "127.0.0.1", True),
    ],
)
def test_auth_mode_auto_is_off_on_loopback_only(mode: str, host: str | None, required: bool) -> None:
    assert AccessSettings(auth=AuthMode(mode)).required_for(host) is required


def test_auth_variable_and_empty_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVLAB_AUTH", "off")
    monkeypatch.setenv("CONVLAB_ADMIN_TOKEN", "")
    settings = Settings(bind_host="0.0.0.0")
    assert settings.auth_required is False and settings.access.admin_token is None
    monkeypatch.setenv("CONVLAB_ADMIN_TOKEN", "short")
    with pytest.raises(ValidationError, match="admin_token"):
        Settings()


def test_variable_names_cover_every_group() -> None:
    names = variable_names()
    assert {"CONVLAB_AUTH", "CONVLAB_ADMIN_TOKEN", "CONVLAB_OPTLAB_MAX_STEPS", "CONVLAB_LEASE_SECONDS"} <= names
    assert "CONVLAB_ACCESS" not in names
