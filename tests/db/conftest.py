"""Database fixtures on each backend: an empty database, or a private copy of a migrated one."""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.storage.db import make_engine, make_session_factory
from tests.db.databases import BACKENDS, database_copy, empty_database, migrated_template


class Templates:
    """Migrated template databases, one per backend, made on first use and removed at the end."""

    def __init__(self, stack: ExitStack, directory: Path) -> None:
        self.stack = stack
        self.directory = directory
        self.made: dict[str, str] = {}

    def get(self, backend: str) -> str:
        if backend not in self.made:
            self.made[backend] = self.stack.enter_context(migrated_template(backend, self.directory))
        return self.made[backend]


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """The session's migrated templates."""
    with ExitStack() as stack:
        yield Templates(stack, tmp_path_factory.mktemp("templates"))


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database (SQLite file; PostgreSQL when configured)."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, templates: Templates, tmp_path: Path) -> Iterator[str]:
    """The URL of a private database migrated to head (SQLite file; PostgreSQL when configured)."""
    with database_copy(request.param, templates.get(request.param), tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the migrated database."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the migrated database."""
    return make_session_factory(engine)
