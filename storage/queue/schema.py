"""procrastinate's tables and functions in the catalog's PostgreSQL database, applied once.

Applied by catalog migration 0013 and, idempotently, by ``ensure_schema`` when a queue is first
used (a catalog migrated before procrastinate was installed). Under a transaction-scoped advisory
lock so two processes starting together apply it once. Upgrading procrastinate to a version with
a new schema needs its own SQL migrations (``procrastinate schema --migrations-path``), run by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_LOCK_KEY = 0x5354_5147  # "STQG": pg_advisory_xact_lock key of the schema step
PRESENT_SQL = "SELECT to_regclass('procrastinate_jobs') IS NOT NULL"


def schema_sql() -> str | None:
    """procrastinate's schema.sql, or None when procrastinate is not installed."""
    try:
        from procrastinate.schema import SchemaManager
    except ImportError:
        return None
    return str(SchemaManager.get_schema())


def apply_schema_sql(execute: Callable[..., Any]) -> bool:
    """Apply the schema through ``execute(sql)`` (one DB-API/driver call, in the caller's
    transaction) unless present; True when applied. No-op (logged) without procrastinate."""
    sql = schema_sql()
    if sql is None:
        log.info("procrastinate is not installed: the work-queue schema is applied when it is first used")
        return False
    execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
    present = execute(PRESENT_SQL).scalar()
    if present:
        return False
    execute(sql.replace("%", "%%"))
    return True


# Everything procrastinate's schema made (tables, functions, types: all named procrastinate_*),
# dropped by catalog migration 0013's downgrade.
DROP_SQL = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%' LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.sig);
    END LOOP;
    FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate%' AND t.typtype IN ('e', 'c') LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
    END LOOP;
END $$;
"""
