"""services table (one row per storage host, heartbeats) and volumes.host (the owning host).

Existing volumes get this host's name: the one ``storage.open()`` passes as the Alembic
attribute ``host_name`` (config ``host_name``, default the hostname).

Revision ID: 0009
Revises: 0008
"""
import socket

from alembic import context, op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _host_name() -> str:
    name = context.config.attributes.get("host_name") if context.config is not None else None
    return str(name or socket.gethostname())


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("pools", sa.JSON(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("availability_zone", sa.String(255), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_services"),
    )
    op.add_column("volumes", sa.Column("host", sa.String(255), nullable=True))
    volumes = sa.table("volumes", sa.column("host", sa.String(255)))
    op.execute(volumes.update().where(volumes.c.host.is_(None)).values(host=_host_name()))
    op.create_index("ix_volumes_host", "volumes", ["host"])


def downgrade() -> None:
    op.drop_index("ix_volumes_host", table_name="volumes")
    with op.batch_alter_table("volumes") as batch:
        batch.drop_column("host")
    op.drop_table("services")
