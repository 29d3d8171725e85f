"""Catalog migrations, on SQLite and on PostgreSQL: the fast path's head revision matches Alembic's,
old catalogs upgrade, every revision goes up and down again, and the migrated schema is the models'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from storage.catalog.db import HEAD_REVISION, Catalog, alembic_config, current_revision
from storage.catalog.models import metadata
from tests.fixtures_postgres import PostgresServer

pytestmark = pytest.mark.both_catalogs


@pytest.fixture
def empty_url(catalog_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A catalog URL with no tables at all (PostgreSQL: a new database from template0)."""
    if catalog_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'c.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(migrated=False)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


def _upgrade(catalog: Catalog, revision: str) -> None:
    cfg = alembic_config(catalog.engine)
    with catalog.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _downgrade(catalog: Catalog, revision: str) -> None:
    cfg = alembic_config(catalog.engine)
    with catalog.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_head_revision_constant_is_alembics_head(empty_url: str) -> None:
    catalog = Catalog(empty_url)
    try:
        assert ScriptDirectory.from_config(alembic_config(catalog.engine)).get_current_head() == HEAD_REVISION
        assert current_revision(catalog.engine) == HEAD_REVISION
    finally:
        catalog.close()


def test_catalog_at_an_older_revision_is_upgraded_on_open(empty_url: str) -> None:
    old = Catalog(empty_url, run_migrations=False)
    _upgrade(old, "0004")
    with old.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
    assert "exports" not in inspect(old.engine).get_table_names()
    old.close()
    reopened = Catalog(empty_url)
    try:
        assert current_revision(reopened.engine) == HEAD_REVISION
        assert "exports" in inspect(reopened.engine).get_table_names()
    finally:
        reopened.close()


def test_every_revision_upgrades_and_downgrades(empty_url: str) -> None:
    """Up one step at a time to head, down to nothing, up again: each step on this database."""
    catalog = Catalog(empty_url, run_migrations=False)
    try:
        script = ScriptDirectory.from_config(alembic_config(catalog.engine))
        revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
        assert revisions[-1] == HEAD_REVISION
        for revision in revisions:
            _upgrade(catalog, revision)
            assert current_revision(catalog.engine) == revision
        _downgrade(catalog, "base")
        assert set(inspect(catalog.engine).get_table_names()) <= {"alembic_version"}
        _upgrade(catalog, "head")
        assert current_revision(catalog.engine) == HEAD_REVISION
    finally:
        catalog.close()


def test_migrated_schema_matches_the_models(empty_url: str) -> None:
    """Alembic's autogenerate finds nothing to add, drop or alter: migrations and models agree."""
    catalog = Catalog(empty_url)
    try:
        with catalog.engine.connect() as conn:
            # procrastinate's own tables (the work queues, migration 0013 on PostgreSQL) are not ours
            ours = {"include_name": lambda name, kind, _parent: kind != "table" or not str(name).startswith("procrastinate")}
            diff = compare_metadata(MigrationContext.configure(conn, opts=ours), metadata)
        assert diff == []
    finally:
        catalog.close()
