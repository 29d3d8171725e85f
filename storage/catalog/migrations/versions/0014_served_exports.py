"""backups.description (free text, at most 255 characters, NULL when none was given) and the
served_exports table: NBD exports of backups a long-running process (the API host) started
with ``st.backups.serve`` (storage/nbd/managed.py), each until it is stopped or its TTL ends.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("backups", sa.Column("description", sa.String(255), nullable=True))
    op.create_table(
        "served_exports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("backup_id", sa.String(36), nullable=False),
        sa.Column("export_name", sa.String(128), nullable=False),
        sa.Column("uri", sa.String(512), nullable=False),
        sa.Column("listen", sa.String(255), nullable=False),
        sa.Column("host_name", sa.String(255), nullable=False),
        sa.Column("process", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("cache_bytes", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_served_exports"),
        sa.UniqueConstraint("host_name", "listen", name="uq_served_exports_host_name"),
    )
    op.create_index("ix_served_exports_backup_id", "served_exports", ["backup_id"])


def downgrade() -> None:
    op.drop_index("ix_served_exports_backup_id", table_name="served_exports")
    op.drop_table("served_exports")
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("description")
