"""Reads of a SQLite catalog through the stdlib sqlite3 (no SQLAlchemy import): pure helpers
for ``Catalog.read``. Only a catalog that exists and is at the head revision is read here;
anything else (no file, an old schema, a locked or unreadable file) answers None and the caller
takes the SQLAlchemy route, which creates or migrates the catalog and reports errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
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


def _open_at_head(path: str, head: str) -> sqlite3.Connection | None:
    """A read-only connection to the catalog file at ``path`` when it is at ``head``, else None."""
    try:
        conn = sqlite3.connect(f"file:{uri_path(path)}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if version is not None and version[0] == head:
            return conn
    except sqlite3.Error:  # locked, not a database, missing table: the SQLAlchemy route says why
        pass
    conn.close()
    return None


def read_sqlite(path: str, sql: str, params: dict[str, Any], *, head: str) -> list[tuple[Any, ...]] | None:
    """Rows of ``sql`` from the catalog file at ``path``, or None when it is not there at ``head``."""
    conn = _open_at_head(path, head)
    if conn is None:
        return None
    try:
        return [tuple(row) for row in conn.execute(sql, params)]
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def iter_sqlite(path: str, sql: str, params: dict[str, Any], *, head: str) -> Iterator[tuple[Any, ...]] | None:
    """The rows of ``sql`` read as they are iterated (one statement: one consistent read; the
    connection closes when the iteration ends or is dropped), or None when the catalog is not
    there at ``head``. A read that fails midway raises sqlite3.Error."""
    conn = _open_at_head(path, head)
    if conn is None:
        return None

    def rows() -> Iterator[tuple[Any, ...]]:
        try:
            for row in conn.execute(sql, params):
                yield tuple(row)
        finally:
            conn.close()

    return rows()
