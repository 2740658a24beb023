"""Initial schema: jobs, job events, epoch metrics, loss points, checkpoints, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT on PostgreSQL, INTEGER on SQLite (where an INTEGER primary key is the autoincrementing rowid).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _id() -> sa.Column:
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _job_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f(f"fk_{table}_job_id_jobs"), ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "jobs",
        _id(),
        sa.Column(
            "status",
            sa.Enum(*STATUSES, name="job_status", native_enum=False, create_constraint=True, length=16),
            nullable=False,
        ),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lost_leases", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.Column("heartbeat_at", Timestamp, nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("total_epochs", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("images_per_sec", sa.Float(), nullable=True),
        sa.Column("eta_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("convlab_version", sa.String(length=64), nullable=True),
        sa.Column("torch_version", sa.String(length=64), nullable=True),
        sa.Column("torchvision_version", sa.String(length=64), nullable=True),
        sa.Column("dataset_checksum", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_claim", "jobs", ["status", "priority", "created_at"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("last_seen", Timestamp, nullable=False),
        sa.Column("current_job_id", BigId, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_table(
        "job_events",
        _id(),
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        _job_fk("job_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
        sqlite_autoincrement=True,  # never reuse an id: they are Server-Sent Events ids
    )
    op.create_index("ix_job_events_job_id_id", "job_events", ["job_id", "id"])
    op.create_table(
        "epoch_metrics",
        _id(),
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=False)
            for name in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_sec")
        ),
        sa.Column("created_at", Timestamp, nullable=False),
        _job_fk("epoch_metrics"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epoch_metrics")),
        sa.UniqueConstraint("job_id", "epoch", name=op.f("uq_epoch_metrics_job_id_epoch")),
    )
    op.create_table(
        "loss_points",
        _id(),
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("examples_seen", sa.BigInteger(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=False),
        _job_fk("loss_points"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loss_points")),
        sa.UniqueConstraint("job_id", "step", name=op.f("uq_loss_points_job_id_step")),
    )
    op.create_table(
        "checkpoints",
        _id(),
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _job_fk("checkpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
        sa.UniqueConstraint("job_id", "step", name=op.f("uq_checkpoints_job_id_step")),
    )
    op.create_index("ix_checkpoints_job_id_epoch", "checkpoints", ["job_id", "epoch"])


def downgrade() -> None:
    op.drop_index("ix_checkpoints_job_id_epoch", table_name="checkpoints")
    op.drop_table("checkpoints")
    op.drop_table("loss_points")
    op.drop_table("epoch_metrics")
    op.drop_index("ix_job_events_job_id_id", table_name="job_events")
    op.drop_table("job_events")
    op.drop_table("workers")
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.drop_table("jobs")
