"""Fixtures for the dashboard tests: the HTTP API tests' apps (auth off) and clients."""

from tests.api.conftest import client, settings

__all__ = ["client", "settings"]
