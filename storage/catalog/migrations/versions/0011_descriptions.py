"""volumes.description and snapshots.description: free text (at most 255 characters, Cinder's
``description``; storage.bounds.DESCRIPTION_MAX), NULL when none was given.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("volumes", "snapshots")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("description", sa.String(255), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("description")
