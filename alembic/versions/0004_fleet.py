"""A heterogeneous fleet: workers state their device; jobs say which device and how many processes they need.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("device_kind", sa.String(length=8), server_default="cpu", nullable=False))
        batch.add_column(sa.Column("device_name", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("device_memory", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("device_count", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("device", sa.String(length=8), server_default="auto", nullable=False))
        batch.add_column(sa.Column("processes", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("processes")
        batch.drop_column("device")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("device_count")
        batch.drop_column("device_memory")
        batch.drop_column("device_name")
        batch.drop_column("device_kind")
