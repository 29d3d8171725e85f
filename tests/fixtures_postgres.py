"""Pytest plugin: a real PostgreSQL cluster on 127.0.0.1, once per test session, and the catalog URL.

``postgres_server`` starts ``scripts/postgres.sh`` (initdb + pg_ctl as the ``postgres`` user, a free
port, its own socket dir, fsync off) in /dev/shm and migrates a template database once; each test
that asks for a PostgreSQL catalog gets its own database copied from that template (``CREATE
DATABASE ... TEMPLATE``: ~50 ms) and dropped after the test.

``catalog_kind`` is ``"sqlite"`` unless a test is marked ``both_catalogs`` (a module sets
``pytestmark = pytest.mark.both_catalogs``): then every test of it that uses the catalog runs twice,
``[sqlite]`` and ``[postgresql]``. ``catalog_url`` is the URL for the kind; conftest's
``config_file`` writes it, so ``st``, the CLI and the API server all use it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "postgres.sh"
CATALOG_KINDS = ("sqlite", "postgresql")
TEMPLATE = "storage_template"


@dataclass
class PostgresServer:
    dir: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)  # type: ignore[arg-type]  # names below are generated, never user input

    def create_database(self, *, migrated: bool = True) -> str:
        """A new empty database (``migrated=False``) or one at the catalog's newest revision; its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _missing() -> str | None:
    if not any(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "PostgreSQL server missing (apt-get install postgresql; scripts/install-deps.sh does)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg 3 missing (pip install -e '.[test]'; scripts/install-deps.sh does)"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = _missing()
    if reason:
        pytest.fail(reason)  # the test command installs both; a silent skip would hide half the suite
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="storage-pg-", dir=shm if shm.is_dir() else None))
    out = subprocess.run(
        [str(SCRIPT), "start", "--dir", str(base), "--fast", "--json"],
        check=False, timeout=120, capture_output=True, text=True,
    )
    if out.returncode != 0:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(base), "--purge"], check=False, timeout=60)
        pytest.fail(f"PostgreSQL did not start: {out.stderr[-2000:]}")
    server = PostgresServer(dir=base, port=int(json.loads(out.stdout)["port"]))
    try:
        from storage.catalog import Catalog

        server._admin(f"CREATE DATABASE {TEMPLATE}")
        Catalog(server.url(TEMPLATE)).close()  # migrated once; every test database copies it
        yield server
    finally:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(base), "--purge"], check=False, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_catalogs: run each catalog-using test on SQLite and on PostgreSQL (tests/fixtures_postgres.py)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "catalog_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_catalogs"):
        metafunc.parametrize("catalog_kind", CATALOG_KINDS, indirect=True)


@pytest.fixture(scope="module")
def catalog_kind(request: pytest.FixtureRequest) -> str:
    """Module-scoped so module-scoped servers (tests/api_server.py) can follow it; pytest groups a
    module's tests by kind."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="module")
def module_catalog_url(catalog_kind: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """For module-scoped servers: None for SQLite (the default under their data dir), else the URL of
    a PostgreSQL database of their own, dropped when the module is done."""
    if catalog_kind == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database at the catalog's newest revision (dropped afterwards)."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def catalog_url(catalog_kind: str, data_dir: Path, request: pytest.FixtureRequest) -> str:
    """The catalog URL of this test: SQLite under the data dir, or a fresh PostgreSQL database."""
    if catalog_kind == "sqlite":
        return f"sqlite:///{data_dir / 'catalog.db'}"
    if catalog_kind == "postgresql":
        return str(request.getfixturevalue("pg_database"))
    raise ValueError(f"catalog kind {catalog_kind!r}; accepted: {', '.join(CATALOG_KINDS)}")
