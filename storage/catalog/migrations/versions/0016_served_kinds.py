"""served_exports.kind and served_exports.volume_id: a live restore (``backup restore --live``,
storage/nbd/live_service.py) is recorded beside the read-only serves, as kind ``live-restore``
with the volume it restores into, so ``backup delete`` and ``backup gc`` of its backup are
refused while it runs and ``GET /backups/serves`` shows it. Existing rows are ``serve``.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("served_exports") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="serve"))
        batch.add_column(sa.Column("volume_id", sa.String(36), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM served_exports WHERE kind <> 'serve'")
    with op.batch_alter_table("served_exports") as batch:
        batch.drop_column("volume_id")
        batch.drop_column("kind")
