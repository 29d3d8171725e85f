"""Several OS processes, each with its own engine, racing on one catalog (SQLite file or PostgreSQL).

What several API replicas on several hosts do to a shared catalog: exactly one compare-and-set
winner, every loser a ``Conflict``, never an ``IntegrityError`` or another driver error escaping.
Each process waits on one barrier so the writes really overlap.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from sqlalchemy import func, select

import storage
from storage.catalog import Catalog
from storage.catalog.base import new_id, utcnow
from storage.catalog.db import HEAD_REVISION, current_revision
from storage.catalog.volumes import VolumeRow, cas_volume_status
from storage.domain import VolumeStatus
from storage.errors import Conflict
from tests.fixtures_postgres import PostgresServer

pytestmark = pytest.mark.both_catalogs

WRITERS = 5
HOLD_S = 0.5  # the winner keeps its transaction (and row lock) open this long: the others overlap it
CTX = multiprocessing.get_context("fork")  # children reuse the imported modules; each opens its own engine


def _outcome(results: Queue, barrier: Barrier, work, setup=lambda: None) -> None:  # type: ignore[no-untyped-def]
    """Run setup, meet the others, run work; report what happened (setup errors too, never hang)."""
    try:
        setup()
        barrier.wait(timeout=30)
        work()
        results.put(("won", ""))
    except Conflict as exc:
        results.put(("conflict", exc.message))
    except BaseException as exc:  # noqa: BLE001 - the parent asserts on what escaped
        results.put(("error", f"{type(exc).__module__}.{type(exc).__name__}: {exc}"))


def _extend_racer(url: str, volume_id: str, barrier: Barrier, results: Queue) -> None:
    catalogs: list[Catalog] = []

    def work() -> None:
        with catalogs[0].session() as s:
            cas_volume_status(s, volume_id, VolumeStatus.EXTENDING, allowed_from=frozenset({VolumeStatus.AVAILABLE}))
            time.sleep(HOLD_S)

    _outcome(results, barrier, work, lambda: catalogs.append(Catalog(url)))


def _create_racer(config: str, name: str, barrier: Barrier, results: Queue) -> None:
    """Each process opens the (new) catalog itself, then all create the same name."""
    opened: list[storage.Storage] = []
    _outcome(results, barrier, lambda: opened[0].volumes.create(name, "1M"), lambda: opened.append(storage.open(config)))


def _open_racer(url: str, barrier: Barrier, results: Queue) -> None:
    def work() -> None:
        catalog = Catalog(url)
        catalog.engine  # noqa: B018 - a SQLite catalog is made and migrated on first use, not on open
        catalog.close()
        raise Conflict("opened")  # every opener "loses": the parent checks that none errored

    _outcome(results, barrier, work)


def _race(target, *args: object) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    barrier = CTX.Barrier(WRITERS)
    results: Queue = CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args, barrier, results)) for _ in range(WRITERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0, f"racer exited with {p.exitcode}"
    return outcomes


def test_one_process_wins_available_to_extending(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    vid = new_id()
    with catalog.session() as s:
        now = utcnow()
        s.add(VolumeRow(id=vid, name="raced", size_bytes=1 << 20, pool="default", status="available",
                        labels={}, created_at=now, updated_at=now))  # fmt: skip
    outcomes = _race(_extend_racer, catalog_url, vid)
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["conflict"] * (WRITERS - 1) + ["won"], outcomes
    assert all("extending" in message for kind, message in outcomes if kind == "conflict"), outcomes
    with catalog.session() as s:
        assert s.scalar(select(VolumeRow.status).where(VolumeRow.id == vid)) == "extending"
    catalog.close()


def test_one_process_creates_a_name(config_file: Path) -> None:
    outcomes = _race(_create_racer, str(config_file), "same-name")
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["conflict"] * (WRITERS - 1) + ["won"], outcomes
    assert all("exists already" in message for kind, message in outcomes if kind == "conflict"), outcomes
    # Losers that passed the service's "does it exist?" check together with the winner were refused by
    # the unique index ("a volume with this name..."; storage/catalog/conflicts.py); the others by the
    # check itself. Which of the two is timing; that none escapes as an error is not.
    with storage.open(config_file) as st:
        assert [v.name for v in st.volumes.list()] == ["same-name"]
        with st.catalog.session() as s:
            assert s.scalar(select(func.count()).select_from(VolumeRow)) == 1


def test_processes_opening_a_new_catalog_migrate_it_once(
    catalog_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if catalog_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'new.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = server.create_database(migrated=False)
        request.addfinalizer(lambda: server.drop_database(name))
        url = server.url(name)
    outcomes = _race(_open_racer, url)
    assert [kind for kind, _ in outcomes] == ["conflict"] * WRITERS, outcomes
    catalog = Catalog(url, run_migrations=False)
    assert current_revision(catalog.engine) == HEAD_REVISION
    catalog.close()
