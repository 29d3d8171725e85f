"""Catalog URLs: which databases are accepted, and how a URL is shown without its password.

SQLite (``sqlite:///PATH``, the default under the data dir) and PostgreSQL through psycopg 3
(``postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DB``; a plain ``postgresql://`` means the same;
without a host, libpq's defaults apply: the local socket)
are the catalogs the project tests. Anything else is refused with the accepted forms named, before
SQLAlchemy or a driver sees it. Pure functions, table-tested in tests/test_catalog_urls.py.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import InvalidInput

MAX_URL_LENGTH = 2048
ACCEPTED = "sqlite:///PATH or postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
_DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite", "postgresql": "postgresql+psycopg",
            "postgresql+psycopg": "postgresql+psycopg"}  # fmt: skip


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (unparseable text is shown as a placeholder)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "<not a URL>" if ":" in url and "@" in url else url[:200]
    return parsed.render_as_string(hide_password=True)


def parse_catalog_url(url: str) -> URL:
    """The SQLAlchemy URL for a catalog setting, or InvalidInput naming what is accepted."""
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidInput(
            f"catalog.url must be 1 to {MAX_URL_LENGTH} characters (got {len(url)}); accepted: {ACCEPTED}",
            field="catalog.url",
        )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise InvalidInput(
            f"catalog.url {redact_url(url)!r} is not a database URL; accepted: {ACCEPTED}", field="catalog.url"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise InvalidInput(
            f"catalog.url uses {parsed.drivername!r}, which is not a supported catalog; accepted: {ACCEPTED}",
            field="catalog.url",
        )
    parsed = parsed.set(drivername=driver)
    if driver == "sqlite" and not parsed.database:
        raise InvalidInput(
            f"catalog.url {redact_url(url)!r} names no database file; accepted: {ACCEPTED}", field="catalog.url"
        )
    return parsed
