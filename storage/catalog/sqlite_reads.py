"""Reads of a SQLite catalog through the stdlib sqlite3 (no SQLAlchemy import): pure helpers
for ``Catalog.read``. Only a catalog that exists and is at the head revision is read here;
anything else (no file, an old schema, a locked or unreadable file) answers None and the caller
takes the SQLAlchemy route, which creates or migrates the catalog and reports errors."""

from __future__ import annotations

import sqlite3
from typing import Any

SQLITE_PREFIX = "sqlite:///"
MAX_URL_LENGTH = 2048  # storage.catalog.urls.MAX_URL_LENGTH (a test keeps them equal): longer is refused there


def sqlite_path(url: str) -> str | None:
    """The file of a plain ``sqlite:///path`` URL; None for other databases or URL options."""
    if not url.startswith(SQLITE_PREFIX) or len(url) > MAX_URL_LENGTH:
        return None
    path = url.removeprefix(SQLITE_PREFIX)
    if not path or "?" in path or path == ":memory:":
        return None
    return path


def uri_path(path: str) -> str:
    """``path`` for a ``file:`` URI: the three characters a URI path gives meaning to, escaped."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def read_sqlite(path: str, sql: str, params: dict[str, Any], *, head: str) -> list[tuple[Any, ...]] | None:
    """Rows of ``sql`` from the catalog file at ``path``, or None when it is not there at ``head``."""
    try:
        conn = sqlite3.connect(f"file:{uri_path(path)}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if version is None or version[0] != head:
            return None
        return [tuple(row) for row in conn.execute(sql, params)]
    except sqlite3.Error:  # locked, not a database, missing table: the SQLAlchemy route says why
        return None
    finally:
        conn.close()
