"""Constraint violations of the catalog as ``Conflict`` (409 / exit 4), decided once, here.

Services check a name before they insert it, but two writers can pass that check together; the
database's unique and foreign-key constraints then stop the second, and ``Catalog.session()``
turns its ``IntegrityError`` into the ``Conflict`` this module words. The message names the
table and column only, never the raw driver text (it can carry values).
"""

from __future__ import annotations

import re

from storage.errors import Conflict

# (table, column) -> what the caller is told; the table name alone for other columns of it
_MESSAGES = {
    ("volumes", "name"): "a volume with this name exists already (created concurrently); choose another name",
    ("snapshots", "name"): "a snapshot with this name exists already (created concurrently); choose another name",
    ("policies", "name"): "a policy with this name exists already (created concurrently); choose another name",
    ("volume_attachments", "volume_id"): "the volume is attached already (concurrently)",
    ("exports", "volume_id"): "the volume is exported already (concurrently); unexport it first",
    ("exports", "target_iqn"): "an export with this target IQN exists already (created concurrently)",
}
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (\w+)\.(\w+)")
_PG_UNIQUE = re.compile(r'unique constraint "(?:uq|ix|pk)_(\w+?)_(\w+)"')
_PG_KEY = re.compile(r"Key \((\w+)\)=")
_FOREIGN = re.compile(r"FOREIGN KEY constraint failed|violates foreign key constraint", re.IGNORECASE)
_TABLES = ("volume_attachments", "catalog_versions", "policy_runs", "api_tokens", "volumes", "snapshots",
           "policies", "backups", "exports", "jobs")


def _pg_table_column(text: str) -> tuple[str, str] | None:
    m = _PG_UNIQUE.search(text)
    if m is None:
        return None
    constraint = f"{m.group(1)}_{m.group(2)}"
    for table in _TABLES:  # longest names first, so volume_attachments wins over volumes
        if constraint.startswith(table + "_"):
            key = _PG_KEY.search(text)
            return table, key.group(1) if key else constraint[len(table) + 1:]
    return None


def constraint_of(text: str) -> tuple[str, str] | None:
    """``(table, column)`` of a unique-constraint violation in a driver's message, or None."""
    m = _SQLITE_UNIQUE.search(text)
    if m is not None:
        return m.group(1), m.group(2)
    return _pg_table_column(text)


def conflict_for(text: str) -> Conflict:
    """The Conflict to raise for an IntegrityError whose driver message is ``text``."""
    where = constraint_of(text)
    if where is not None:
        message = _MESSAGES.get(where, f"a {where[0]} row with this {where[1]} exists already (written concurrently)")
        return Conflict(message, table=where[0], field=where[1])
    if _FOREIGN.search(text):
        return Conflict("a row this change refers to was changed or deleted concurrently; retry")
    return Conflict("the change conflicts with a concurrent change in the catalog; retry")
