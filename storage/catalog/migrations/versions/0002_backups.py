"""backups tables.

Revision ID: 0002
Revises: 0001
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("repository", sa.String(1024), nullable=False),
        sa.Column("repository_id", sa.String(36), nullable=True),
        sa.Column("volume_id", sa.String(36), nullable=True),
        sa.Column("volume_name", sa.String(128), nullable=True),
        sa.Column("source", sa.String(1024), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("key_file", sa.String(1024), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("read_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("zero_chunk_count", sa.Integer(), nullable=False),
        sa.Column("new_chunk_count", sa.Integer(), nullable=False),
        sa.Column("dedup_chunk_count", sa.Integer(), nullable=False),
        sa.Column("reused_chunk_count", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(36), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    op.create_index(op.f("ix_backups_repository"), "backups", ["repository"])
    op.create_index(op.f("ix_backups_volume_id"), "backups", ["volume_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_backups_volume_id"), table_name="backups")
    op.drop_index(op.f("ix_backups_repository"), table_name="backups")
    op.drop_table("backups")
