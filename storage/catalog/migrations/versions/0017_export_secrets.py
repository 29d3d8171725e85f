"""export_secrets: the CHAP secret of each exported volume, sealed (AES-256-GCM) with the key every
API replica shares (``[cluster] secrets_key_file``), so any replica answers any export's
``connection_info``; without that key the secrets stay in the host's 0600 file as before.

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_secrets",
        sa.Column("volume_id", sa.String(36), primary_key=True),
        sa.Column("sealed", sa.String(512), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("export_secrets")
