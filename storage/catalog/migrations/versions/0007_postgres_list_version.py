"""volume list version on PostgreSQL: the counter row and a trigger function bumping it.

0006 gave SQLite its triggers; on PostgreSQL the counter was absent and the API never cached its
listing. Here one PL/pgSQL function bumps the counter from statement-level BEFORE triggers on
volumes and volume_attachments: the UPDATE runs inside the writing transaction (readers see the
new value exactly when they see the change), and being BEFORE the statement it takes the counter's
row lock before any volume row lock, so two writers always lock in the same order (no deadlock).
The price: writes to volumes are serialised cluster-wide for the rest of their transaction, which
catalog transactions keep short. Nothing to do on SQLite (0006 did it).

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COUNTER = "volumes"
WATCHED = ("volumes", "volume_attachments")
FUNCTION = "storage_bump_volume_list_version"


def _trigger_name(table: str) -> str:
    return f"trg_{table}_list_version"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"INSERT INTO catalog_versions (name, value) VALUES ('{COUNTER}', 1) ON CONFLICT (name) DO NOTHING"
    )
    op.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN UPDATE catalog_versions SET value = value + 1 WHERE name = '{COUNTER}'; RETURN NULL; END $$"
    )
    for table in WATCHED:
        op.execute(
            f"CREATE TRIGGER {_trigger_name(table)} BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table)} ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    op.execute(f"DELETE FROM catalog_versions WHERE name = '{COUNTER}'")
