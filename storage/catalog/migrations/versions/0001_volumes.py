"""volumes tables: volumes, snapshots, volume_attachments.

Revision ID: 0001
Revises: None
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("pool", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("source_volume_id", sa.String(36), nullable=True),
        sa.Column("source_snapshot_id", sa.String(36), nullable=True),
        sa.Column("task_owner", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_volumes"),
        sa.UniqueConstraint("name", name="uq_volumes_name"),
    )
    op.create_index("ix_volumes_pool", "volumes", ["pool"])
    op.create_index("ix_volumes_status", "volumes", ["status"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("volume_id", sa.String(36), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("task_owner", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["volume_id"], ["volumes.id"], name="fk_snapshots_volume_id_volumes", ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.UniqueConstraint("name", name="uq_snapshots_name"),
    )
    op.create_index("ix_snapshots_volume_id", "snapshots", ["volume_id"])
    op.create_index("ix_snapshots_status", "snapshots", ["status"])
    op.create_table(
        "volume_attachments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("volume_id", sa.String(36), nullable=False),
        sa.Column("device", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["volume_id"], ["volumes.id"], name="fk_volume_attachments_volume_id_volumes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_volume_attachments"),
        sa.UniqueConstraint("volume_id", name="uq_volume_attachments_volume_id"),
    )


def downgrade() -> None:
    op.drop_table("volume_attachments")
    op.drop_index("ix_snapshots_status", table_name="snapshots")
    op.drop_index("ix_snapshots_volume_id", table_name="snapshots")
    op.drop_table("snapshots")
    op.drop_index("ix_volumes_status", table_name="volumes")
    op.drop_index("ix_volumes_pool", table_name="volumes")
    op.drop_table("volumes")
