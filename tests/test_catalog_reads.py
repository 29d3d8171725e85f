"""Catalog.read: the stdlib sqlite3 route (a CLI listing) and the SQLAlchemy route (a server,
PostgreSQL, a catalog to migrate) run the same SQL and give the same volumes; the listing agrees
with the ORM's view of each volume."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.catalog.db import HEAD_REVISION, Catalog
from storage.catalog.sqlite_reads import read_sqlite, sqlite_path
from storage.catalog.volume_listing import json_dict, list_volume_models, utc_datetime, volume_list_sql
from storage.domain import VolumeStatus


def fill(catalog: Catalog) -> list[str]:
    """Four volumes in two pools, one attached, with labels and sub-second timestamps."""
    from storage.catalog.volumes import AttachmentRow, VolumeRow

    t0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    specs = [("b", "p1", "available", {}), ("a", "p1", "in-use", {"app": "web"}), ("c", "p2", "error", {"k": "v"}), ("d", "p2", "available", {})]
    ids = []
    with catalog.session() as s:
        for i, (name, pool, status, labels) in enumerate(specs):
            row = VolumeRow(name=name, size_bytes=(i + 1) << 20, pool=pool, status=status, labels=labels,
                            created_at=t0 + timedelta(seconds=i // 2), updated_at=t0 + timedelta(minutes=i))  # fmt: skip
            s.add(row)
            s.flush()
            ids.append(row.id)
        s.add(AttachmentRow(volume_id=ids[1], device="/dev/loop7", host="h"))
    return ids


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    fill(catalog)
    catalog.close()
    return url


@pytest.mark.parametrize(
    ("pool", "status"), [(None, None), ("p1", None), (None, VolumeStatus.AVAILABLE), ("p2", VolumeStatus.ERROR), ("p9", None)]
)
def test_sqlite3_and_sqlalchemy_routes_list_the_same(url: str, pool: str | None, status: VolumeStatus | None) -> None:
    fresh, warm = Catalog(url), Catalog(url)
    try:
        warm.engine  # noqa: B018 - an engine exists: reads go through SQLAlchemy
        via_sqlite3 = list_volume_models(fresh, pool=pool, status=status)
        assert fresh._engine is None, "the listing of a catalog at head must not make an engine"
        via_engine = list_volume_models(warm, pool=pool, status=status)
    finally:
        fresh.close()
        warm.close()
    assert via_sqlite3 == via_engine
    if pool is None and status is None:
        assert [v.name for v in via_sqlite3] == ["a", "b", "c", "d"]  # created_at, then name
        assert via_sqlite3[0].attached_device == "/dev/loop7" and via_sqlite3[0].labels == {"app": "web"}


def test_listing_agrees_with_the_orm_view(url: str) -> None:
    from storage.catalog.volumes import load_volume

    catalog = Catalog(url)
    try:
        listed = list_volume_models(catalog)
        with catalog.session() as s:
            assert listed == [load_volume(s, v.id) for v in listed]
    finally:
        catalog.close()


def test_old_or_missing_catalog_takes_the_migrating_route(tmp_path: Path, url: str) -> None:
    new = Catalog(f"sqlite:///{tmp_path / 'new' / 'c.db'}")
    assert list_volume_models(new) == [] and new._engine is not None  # created and migrated
    new.close()
    path = sqlite_path(url)
    assert path is not None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0005'")
    assert read_sqlite(path, "SELECT 1", {}, head=HEAD_REVISION) is None


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////var/lib/storage/catalog.db", "/var/lib/storage/catalog.db"),
        ("sqlite:///rel.db", "rel.db"),
        ("sqlite:///:memory:", None),
        ("sqlite:///c.db?mode=ro", None),
        ("sqlite://", None),
        ("postgresql+psycopg://u@h/db", None),
    ],
)
def test_sqlite_path(url: str, path: str | None) -> None:
    assert sqlite_path(url) == path


def test_volume_list_sql_filters() -> None:
    assert "WHERE" not in volume_list_sql(pool=False, status=False)
    assert "WHERE v.pool = :pool AND v.status = :status ORDER BY" in volume_list_sql(pool=True, status=True)
    assert "WHERE v.status = :status ORDER BY" in volume_list_sql(pool=False, status=True)


def test_value_normalisers() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert utc_datetime("2026-01-02 03:04:05.000006") == aware == utc_datetime(aware.replace(tzinfo=None)) == utc_datetime(aware)
    assert json_dict('{"a": "b"}') == {"a": "b"} == json_dict({"a": "b"})
    assert json_dict(None) == {}


def test_backup_listing_matches_the_orm_rows_and_marks_dead_creators(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from sqlalchemy import select

    from storage.backup import records
    from storage.backup.listing import BackupListing
    from storage.catalog.backups import BackupRow

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    t0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    setup = Catalog(url)
    with setup.session() as s:
        s.add(records.new_row(id="b1", repository="file:///r1", volume_name="v", status="available", encrypted=True,
                              labels={"k": "v"}, created_at=t0, completed_at=t0 + timedelta(seconds=3)))  # fmt: skip
        s.add(records.new_row(id="b2", repository="file:///r2", status="creating", created_at=t0 + timedelta(seconds=1),
                              owner=f"{socket.gethostname()}:{dead.stdout.strip()}"))  # fmt: skip
    setup.close()

    fresh = Catalog(url)
    listing = BackupListing(fresh, lambda u: u.rstrip("/"))
    try:
        assert [b.id for b in listing.list(repository="file:///r1/")] == ["b1"]
        assert fresh._engine is not None  # b2's process is gone: marked interrupted first, through the ORM
        got = listing.list()
        with fresh.session() as s:
            assert got == [records.to_model(r) for r in s.scalars(select(BackupRow).order_by(BackupRow.created_at))]
        assert [(b.id, b.status, b.encrypted, b.labels) for b in got] == [("b1", "available", True, {"k": "v"}), ("b2", "interrupted", False, {})]
        assert got[0].completed_at == t0 + timedelta(seconds=3)
        assert [b.id for b in listing.list(status="interrupted", volume=None)] == ["b2"]
        assert [b.id for b in listing.list(volume="v", labels={"k": "v"})] == ["b1"]
    finally:
        fresh.close()
    again = Catalog(url)
    try:
        assert BackupListing(again, str).list() == got
        assert again._engine is None  # nothing left to mark: read through sqlite3 only
    finally:
        again.close()


def test_uri_path_escapes_what_sqlite_would_read_as_uri_syntax(tmp_path: Path) -> None:
    from storage.catalog.sqlite_reads import uri_path

    assert uri_path("/a b/c%d?e#f.db") == "/a b/c%25d%3fe%23f.db"
    odd = tmp_path / "x#y z%20?" / "c.db"
    odd.parent.mkdir()
    with sqlite3.connect(odd) as conn:  # (SQLAlchemy and Alembic's config cannot take such a path; sqlite3 can)
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (HEAD_REVISION,))
    assert read_sqlite(str(odd), "SELECT COUNT(*) FROM alembic_version", {}, head=HEAD_REVISION) == [(1,)]


@pytest.mark.both_catalogs
def test_listings_agree_with_the_orm_on_each_catalog(catalog_url: str) -> None:
    """On PostgreSQL Catalog.read takes the SQLAlchemy route (aware timestamps, decoded JSON):
    the same SQL and the same mapping give what the ORM gives, filters included."""
    from sqlalchemy import select

    from storage.backup import records
    from storage.backup.listing import BackupListing
    from storage.catalog.backups import BackupRow
    from storage.catalog.volumes import load_volume

    catalog = Catalog(catalog_url)
    try:
        fill(catalog)
        with catalog.session() as s:
            s.add(records.new_row(id="b1", repository="file:///r", status="available", encrypted=True, labels={"k": "v"},
                                  created_at=datetime(2026, 1, 2, tzinfo=UTC), completed_at=datetime(2026, 1, 2, 0, 1, tzinfo=UTC)))  # fmt: skip
        listed = list_volume_models(catalog)
        assert [v.name for v in listed] == ["a", "b", "c", "d"]
        assert [v.name for v in list_volume_models(catalog, pool="p2", status=VolumeStatus.ERROR)] == ["c"]
        backups = BackupListing(catalog, str).list(repository="file:///r")
        with catalog.session() as s:
            assert listed == [load_volume(s, v.id) for v in listed]
            assert backups == [records.to_model(r) for r in s.scalars(select(BackupRow))]
    finally:
        catalog.close()


def test_url_length_limit_is_the_url_checks() -> None:
    from storage.catalog import sqlite_reads, urls

    assert sqlite_reads.MAX_URL_LENGTH == urls.MAX_URL_LENGTH
    assert sqlite_path("sqlite:///" + "a" * 3000) is None  # the engine route refuses it, naming the limit


def test_volume_listing_settles_only_when_a_dead_process_left_a_status(url: str) -> None:
    """The check is one read; settle (drivers + ORM) runs only when a transitional row's owner is dead."""
    import subprocess
    import sys

    from sqlalchemy import select

    from storage import owners
    from storage.catalog.volumes import VolumeRow
    from storage.volumes.listing import VolumeListing

    calls: list[int] = []
    catalog = Catalog(url)
    try:
        listing = VolumeListing(catalog, settle=lambda: calls.append(1))
        listing.list()
        assert calls == [] and catalog._engine is None
        with catalog.session() as s:
            row = s.scalars(select(VolumeRow).where(VolumeRow.name == "b")).one()
            row.status, row.task_owner = "extending", owners.this_owner()  # alive: this process
        VolumeListing(catalog, settle=lambda: calls.append(1)).list()
        assert calls == []
        dead = subprocess.run([sys.executable, "-c", "from storage import owners; print(owners.this_owner())"],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        with catalog.session() as s:
            s.scalars(select(VolumeRow).where(VolumeRow.name == "b")).one().task_owner = dead
        VolumeListing(catalog, settle=lambda: calls.append(1)).list()
        assert calls == [1]
    finally:
        catalog.close()
