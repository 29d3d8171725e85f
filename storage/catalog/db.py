"""Catalog database: engine, sessions and Alembic migrations (run on first use).

``Catalog(url)`` of a plain ``sqlite:///PATH`` is cheap: the SQLAlchemy engine is made, and the
schema migrated, the first time a session or the engine is used (any other URL - PostgreSQL - is
checked, connected and migrated at once, as before). Reads (``Catalog.read``) of a SQLite catalog
already at the head revision, before any engine exists, go through the stdlib ``sqlite3``, so a
`storagectl volume list` never imports SQLAlchemy. Both routes run the same SQL text on the same
DB-API driver and return its raw rows, so they cannot disagree (tests/test_catalog_reads.py).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.catalog.sqlite_reads import read_sqlite, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision: a catalog already there skips Alembic (and its import,
# about a fifth of a CLI command's start-up). tests/test_catalog_migrations.py checks it.
HEAD_REVISION = "0017"
# Alembic's `context`/`op` are module-global proxies: two threads migrating at once break
# each other (KeyError: 'config'), so storage.open() in threads is serialised here.
_MIGRATE_LOCK = threading.Lock()
# Across processes and hosts sharing a PostgreSQL catalog: one transaction-scoped advisory lock, so
# API replicas starting together on a new database migrate it once (the others wait, then find head).
PG_MIGRATE_LOCK_KEY = 0x53544F52_4D494752 & 0x7FFFFFFFFFFFFFFF  # "STORMIGR"


DEFAULT_CONNECT_TIMEOUT = 2  # seconds (psycopg's minimum); config catalog.connect_timeout_seconds


def make_engine(url: str, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> "Engine":
    """An engine for a catalog URL (InvalidInput for an unsupported or malformed one).

    PostgreSQL: a new connection gives up after ``connect_timeout`` seconds and every pooled one is
    pinged before use (``pool_pre_ping``), so after the database restarts the next request
    reconnects instead of failing on a dead socket; a dead database is ``CatalogUnavailable``."""
    from sqlalchemy import create_engine, event

    from storage.catalog.urls import parse_catalog_url
    from storage.paths import private_dir, private_file

    parsed = parse_catalog_url(url)
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            db_file = Path(parsed.database)
            private_dir(db_file.parent)  # the data dir, 0700 when this creates it
            private_file(db_file)  # 0600: WAL and SHM files take the database file's mode
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # PostgreSQL: every session is UTC, whatever the server's or role's default time zone, so
    # timestamps compare and print the same from every host.
    return create_engine(parsed, pool_pre_ping=True, pool_timeout=max(10, connect_timeout),
                         connect_args={"options": "-c timezone=UTC", "connect_timeout": connect_timeout})


def alembic_config(engine: "Engine") -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def current_revision(engine: "Engine") -> str | None:
    """The catalog's Alembic revision; None for a new (or unreadable) catalog."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


@contextmanager
def _sqlite_file_lock(engine: "Engine") -> Iterator[None]:
    """Processes of one host opening a new SQLite catalog together: one migrates, the others wait
    (SQLite runs DDL outside the migration's transaction, so the database cannot serialise them)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def migrate(engine: "Engine", host_name: str | None = None) -> None:
    """Bring the schema to the newest revision (idempotent; safe from several processes at once).

    ``host_name`` is the host that owns volumes already in the catalog (migration 0009).
    """
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from sqlalchemy import text

    cfg = alembic_config(engine)
    with _MIGRATE_LOCK, _sqlite_file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATE_LOCK_KEY})
        cfg.attributes["connection"] = conn
        cfg.attributes["host_name"] = host_name
        command.upgrade(cfg, "head")


@contextmanager
def _mapped_errors(display_url: str) -> Iterator[None]:
    """Driver errors leave the catalog typed: see storage.catalog.conflicts and .failures."""
    from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from storage.catalog.conflicts import conflict_for
    from storage.catalog.failures import data_refused, database_failure
    from storage.errors import CatalogUnavailable

    try:
        yield
    except IntegrityError as exc:
        raise conflict_for(str(exc.orig)) from None
    except DataError as exc:
        raise data_refused(exc) from None
    except (OperationalError, InterfaceError) as exc:
        raise database_failure(exc, display_url) from None
    except PoolTimeout:
        raise CatalogUnavailable(f"catalog database {display_url}: no free connection in this process's pool in time; "
                                 "retry later", catalog=display_url) from None


class Catalog:
    """Owns the engine (for a plain SQLite URL made on first use) and hands out sessions."""

    def __init__(self, url: str, *, run_migrations: bool = True, host_name: str | None = None,
                 connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._run_migrations = run_migrations
        self._host_name = host_name
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()
        self._sqlite_file = sqlite_path(url)
        if self._sqlite_file is None:
            self.engine  # noqa: B018 - PostgreSQL or an unusual URL: checked and migrated now, as ever

    @property
    def display_url(self) -> str:
        """The URL for messages: never the password."""
        if self._sqlite_file is not None:
            return self.url  # a file path: no password
        from storage.catalog.urls import redact_url

        return redact_url(self.url)

    @property
    def engine(self) -> "Engine":
        """The SQLAlchemy engine; made, and the schema migrated, on first use."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine, self._sessions = self._connect()
        return self._engine

    def _connect(self) -> "tuple[Engine, sessionmaker[Session]]":
        from sqlalchemy.exc import InterfaceError, OperationalError
        from sqlalchemy.orm import sessionmaker

        from storage.catalog.failures import database_failure

        engine = make_engine(self.url, self._connect_timeout)
        if self._run_migrations:
            try:
                migrate(engine, self._host_name)
            except (OperationalError, InterfaceError) as exc:
                engine.dispose()
                raise database_failure(exc, self.display_url) from None
        return engine, sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator["Session"]:
        """A session in a transaction: committed on success, rolled back on error.

        A constraint violation (two writers racing past a service's own check) leaves here as
        ``Conflict``, never as ``IntegrityError``: see ``storage.catalog.conflicts``; an
        unreachable database as ``BackendError`` (``storage.catalog.failures``).
        """
        self.engine  # noqa: B018 - makes the engine and the session factory
        assert self._sessions is not None
        with _mapped_errors(self.display_url), self._sessions() as session, session.begin():
            yield session

    def read(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The raw DB-API rows of one read-only statement (named ``:params``).

        A SQLite catalog at the head revision is read with the stdlib sqlite3 while no engine
        exists (a CLI listing); otherwise through the engine (a server, PostgreSQL, a catalog
        that is new or needs migrating). Values come back as the driver gives them: callers
        normalise them (timestamps and JSON are text on SQLite).
        """
        params = dict(params or {})
        if self._engine is None and self._sqlite_file is not None and self._run_migrations:
            rows = read_sqlite(self._sqlite_file, sql, params, head=HEAD_REVISION)
            if rows is not None:
                return rows
        from sqlalchemy import text

        engine = self.engine
        with _mapped_errors(self.display_url), engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
