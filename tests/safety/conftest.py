"""Data-safety tests use the database fixtures of tests/db."""

from tests.db.conftest import db_url, empty_db_url, engine, session_factory, templates

__all__ = ["db_url", "empty_db_url", "engine", "session_factory", "templates"]
