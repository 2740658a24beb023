"""API tokens (hashed secrets, scopes) and job ownership.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_tokens_secret_hash")),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner_token_id", BigId, nullable=True))
        batch.add_column(sa.Column("owner_name", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("client_address", sa.String(length=64), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_owner_token_id_api_tokens"), "api_tokens", ["owner_token_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_jobs_owner_token_id_status", ["owner_token_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_owner_token_id_status")
        batch.drop_constraint(op.f("fk_jobs_owner_token_id_api_tokens"), type_="foreignkey")
        batch.drop_column("client_address")
        batch.drop_column("owner_name")
        batch.drop_column("owner_token_id")
    op.drop_table("api_tokens")
