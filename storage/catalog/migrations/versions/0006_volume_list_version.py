"""volume list version: a counter bumped by triggers on every change to volumes or attachments.

The admin API caches its serialised volume listing per (query, counter). The triggers bump the
counter inside the writing transaction, so every writer counts (storage/volumes/service.py, snapshots,
check --repair, reset-status, any other process such as storagectl) without each code path
having to remember it. Only SQLite gets triggers and the counter row here; 0007 adds them on
PostgreSQL. On another database the row is absent, ``volume_list_version`` answers None and the
API does not cache.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COUNTER = "volumes"
WATCHED = ("volumes", "volume_attachments")
EVENTS = ("INSERT", "UPDATE", "DELETE")


def _trigger_name(table: str, event: str) -> str:
    return f"trg_{table}_{event.lower()}_list_version"


def upgrade() -> None:
    op.create_table(
        "catalog_versions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_catalog_versions"),
    )
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"INSERT INTO catalog_versions (name, value) VALUES ('{COUNTER}', 1)")
    for table in WATCHED:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                f"BEGIN UPDATE catalog_versions SET value = value + 1 WHERE name = '{COUNTER}'; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in WATCHED:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)}")
    op.drop_table("catalog_versions")
