"""jobs.queue and jobs.attempts; on PostgreSQL, procrastinate's schema (the work queues).

``jobs.queue``: the queue that carries a job (``host.<name>``, ``shared``), None when it runs in
the process that accepted it. ``jobs.attempts``: how many times it was delivered. On PostgreSQL
the procrastinate tables and functions are created here when procrastinate is installed and they
are not there yet (storage/queue/pq.py ``ensure_schema`` does the same, idempotently, when the
queue is first used); SQLite catalogs get no queue (a single host runs its jobs in process).

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("queue", sa.String(255), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from storage.queue.schema import apply_schema_sql

        apply_schema_sql(bind.exec_driver_sql)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from storage.queue.schema import DROP_SQL

        bind.exec_driver_sql(DROP_SQL.replace("%", "%%"))
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("attempts")
        batch.drop_column("queue")
