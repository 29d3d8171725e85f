"""Cinder connection actions: volume_connections, cinder_attachments, exports.origin.

``exports.origin`` is ``export`` (made by `volume export`; an available volume it attaches becomes
in-use) or ``connection`` (made by os-initialize_connection; it holds the device without changing
the volume's status, which the Cinder actions move).

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volume_connections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("volume_id", sa.String(36), nullable=False),
        sa.Column("initiator", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("connector", sa.JSON(), nullable=False),
        sa.Column("created_export", sa.Boolean(), nullable=False),
        sa.Column("added_initiator", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"], name="fk_volume_connections_volume_id_volumes", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_volume_connections"),
        sa.UniqueConstraint("volume_id", "initiator", name="uq_volume_connections_volume_id"),
    )
    op.create_index("ix_volume_connections_volume_id", "volume_connections", ["volume_id"])
    op.create_table(
        "cinder_attachments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("volume_id", sa.String(36), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("host_name", sa.String(255), nullable=True),
        sa.Column("mountpoint", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(2), nullable=False),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"], name="fk_cinder_attachments_volume_id_volumes", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_cinder_attachments"),
        sa.UniqueConstraint("volume_id", name="uq_cinder_attachments_volume_id"),
    )
    with op.batch_alter_table("exports") as batch:
        batch.add_column(sa.Column("origin", sa.String(16), nullable=False, server_default="export"))


def downgrade() -> None:
    with op.batch_alter_table("exports") as batch:
        batch.drop_column("origin")
    op.drop_table("cinder_attachments")
    op.drop_index("ix_volume_connections_volume_id", table_name="volume_connections")
    op.drop_table("volume_connections")
