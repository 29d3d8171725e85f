"""volumes tables.

Revision ID: 0001
Revises: None
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the issue that owns the volumes tables


def downgrade() -> None:
    pass
