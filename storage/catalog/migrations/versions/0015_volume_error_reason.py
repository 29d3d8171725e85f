"""volumes.error_reason: why a volume went to ``error`` or ``error_deleting`` (the typed error's
message of the step that failed, at most 1000 characters); NULL otherwise. Written wherever a
volume goes to error (create, delete, restore, settling, check --repair), cleared when it is
``available`` or ``in-use`` again.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("volumes", sa.Column("error_reason", sa.String(1000), nullable=True))


def downgrade() -> None:
    op.drop_column("volumes", "error_reason")  # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): keeps the triggers of 0006
