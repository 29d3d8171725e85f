"""Catalog migrations: the fast path's head revision matches Alembic's, and old catalogs upgrade."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from storage.catalog.db import HEAD_REVISION, Catalog, alembic_config, current_revision


def test_head_revision_constant_is_alembics_head(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert ScriptDirectory.from_config(alembic_config(catalog.engine)).get_current_head() == HEAD_REVISION
        assert current_revision(catalog.engine) == HEAD_REVISION
    finally:
        catalog.close()


def test_catalog_at_an_older_revision_is_upgraded_on_open(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Catalog(url, run_migrations=False)
    cfg = alembic_config(old.engine)
    with old.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    with old.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
    assert "exports" not in inspect(old.engine).get_table_names()
    old.close()
    reopened = Catalog(url)
    try:
        assert current_revision(reopened.engine) == HEAD_REVISION
        assert "exports" in inspect(reopened.engine).get_table_names()
    finally:
        reopened.close()
