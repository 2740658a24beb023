"""Fail any SQLite write that follows a read in a transaction begun without the write lock, made by the
service's own threads (request handlers, background work) during the suite.

In WAL mode such a write fails with "database is locked" whenever another process committed since the read, and
the busy timeout does not apply (docs/operations.md, "SQLite and read-then-write requests"). A live worker makes
that a race; this check makes it deterministic: the pattern fails the request the first time it runs, with or
without a concurrent writer. Statements issued from a test's own frames (a test preparing rows with storage
functions) and from migrations are not checked.
"""

import traceback
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from service.storage.db import IMMEDIATE

TESTS = str(Path(__file__).resolve().parent)
READ = "convlab_test_has_read"
WRITES = ("INSERT", "UPDATE", "DELETE")


class StaleWrite(RuntimeError):
    """A write after a read in a deferred SQLite transaction."""


def _reset(conn: Connection) -> None:
    conn.info[READ] = False


def _check(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
    if conn.dialect.name != "sqlite" or conn.get_execution_options().get(IMMEDIATE, False):
        return
    word = statement.lstrip()[:6].upper()
    if word.startswith(("SELECT", "WITH")):
        conn.info[READ] = True
    elif word.startswith(WRITES) and conn.info.get(READ) and conn.in_transaction():
        frames = traceback.extract_stack()[:-1]  # less this function's own frame
        if any(f.filename.startswith(TESTS) or "/alembic/" in f.filename for f in frames):
            return
        where = "\n".join(f"  {f.filename}:{f.lineno} {f.name}" for f in frames if "/service/" in f.filename)
        raise StaleWrite(f"a write after a read without begin_write (SQLite cannot upgrade a stale read):\n{where}")


def install() -> None:
    """Check every engine of this process."""
    event.listen(Engine, "begin", _reset)
    event.listen(Engine, "commit", _reset)
    event.listen(Engine, "rollback", _reset)
    event.listen(Engine, "before_cursor_execute", _check)
