"""exports tables: exports (one iSCSI target per exported volume).

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("volume_id", sa.String(36), nullable=False),
        sa.Column("driver", sa.String(32), nullable=False),
        sa.Column("target_iqn", sa.String(255), nullable=False),
        sa.Column("lun", sa.Integer(), nullable=False),
        sa.Column("portal", sa.String(255), nullable=False),
        sa.Column("device_path", sa.String(4096), nullable=False),
        sa.Column("attached_by_export", sa.Boolean(), nullable=False),
        sa.Column("auth_method", sa.String(16), nullable=True),
        sa.Column("chap_username", sa.String(64), nullable=True),
        sa.Column("initiators", sa.JSON(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"], name="fk_exports_volume_id_volumes", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
        sa.UniqueConstraint("volume_id", name="uq_exports_volume_id"),
        sa.UniqueConstraint("target_iqn", name="uq_exports_target_iqn"),
    )


def downgrade() -> None:
    op.drop_table("exports")
