"""Fixtures for the dashboard tests: the HTTP API tests' apps (auth off) and clients, and the really trained job."""

from tests.api.conftest import client, settings, trained_settings

__all__ = ["client", "settings", "trained_settings"]
