"""Alembic environment: migrations run on our own engine (SQLite pragmas) under one lock.

Started programmatically by `service.storage.db.upgrade_database` (no alembic.ini); the URL arrives in the config.
Concurrent starts (several workers at once) are serialized: SQLite takes the write lock with BEGIN IMMEDIATE,
PostgreSQL an advisory lock, so the second process finds the schema already at head.
"""

from sqlalchemy import text

from alembic import context
from service.storage import orm  # noqa: F401  (registers the tables on Base.metadata)
from service.storage.db import IMMEDIATE, Base, make_engine

MIGRATION_LOCK_ID = 7_211_004  # arbitrary constant shared by every convlab process

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit the SQL for the migrations instead of running them."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations in one transaction that holds the migration lock."""
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{IMMEDIATE: True})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                context.configure(
                    connection=connection, target_metadata=target_metadata, render_as_batch=True, transactional_ddl=True
                )
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
