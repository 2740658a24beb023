"""Real test databases: temporary SQLite files, or fresh PostgreSQL databases that are dropped afterwards.

PostgreSQL is used when CONVLAB_TEST_POSTGRES_URL names a server (`.ci/run` sets it). Migrated databases are
copies of one template migrated per test session (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on
PostgreSQL), so each test starts from its own clean schema quickly.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from service.storage.db import make_engine, upgrade_database

POSTGRES_ENV = "CONVLAB_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def postgres_server_url() -> str:
    """The PostgreSQL URL from the environment; skips the test (saying why) when it is not set."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    return url


def _admin(server_url: str, statement: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


@contextmanager
def fresh_postgres_database(server_url: str, *, template: str | None = None) -> Iterator[str]:
    """Create a database (empty, or a copy of `template`) on `server_url`'s server; yield its URL; drop it."""
    name = f"convlab_test_{uuid.uuid4().hex[:12]}"
    _admin(server_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_template(backend: str, directory: Path) -> Iterator[str]:
    """A database migrated to head, to be copied by `database_copy`: a file path or a database name."""
    if backend == "sqlite":
        path = directory / "template.db"
        url = f"sqlite:///{path}"
        upgrade_database(url)
        make_engine(url).dispose()  # the last connection closing folds the WAL into the file
        yield str(path)
        return
    with fresh_postgres_database(postgres_server_url()) as url:
        upgrade_database(url)
        yield str(make_url(url).database)


@contextmanager
def database_copy(backend: str, template: str, directory: Path) -> Iterator[str]:
    """The URL of a private copy of the migrated `template`, removed afterwards."""
    if backend == "sqlite":
        path = directory / "convlab.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    with fresh_postgres_database(postgres_server_url(), template=template) as url:
        yield url


@contextmanager
def empty_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database on `backend` ("sqlite" or "postgresql"), removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'empty.db'}"
        return
    with fresh_postgres_database(postgres_server_url()) as url:
        yield url
