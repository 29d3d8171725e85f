"""Leases of API replicas and the agent's settling of statuses a gone owner left (storage.hosts.replicas).

The decision is table-tested; the settling runs on a real SQLite catalog and a real file pool.
The kill -9 of real replicas on the private PostgreSQL is tests/test_drill_replica_kill.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import storage
from storage.catalog.api_tables import Job
from storage.catalog.services import ServiceRow
from storage.catalog.volumes import VolumeRow
from storage.hosts.replicas import ReplicaLease, is_lease_name, owner_gone, prune_leases, settle_dead_owners
from tests.api_server import write_config

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FRESH, STALE = NOW - timedelta(seconds=2), NOW - timedelta(seconds=30)


@pytest.mark.parametrize(
    ("owner", "leases", "dead_here", "gone"),
    [
        ("me:10:5", {}, True, True),  # this machine: the probe decides
        ("me:10:5", {}, False, False),
        ("me:10:5", {"me:10:5": FRESH}, True, True),  # the probe wins over a lease on this machine
        ("other:10:5", {"other:10:5": STALE}, False, True),  # another machine: a lease older than down time
        ("other:10:5", {"other:10:5": FRESH}, False, False),
        ("other:10:5", {"other:10:5": None}, False, True),  # a lease that never beat
        ("other:10:5", {"other:11:5": STALE}, False, False),  # another process's lease says nothing
        ("other:10:5", {}, True, False),  # no lease (an older version, a CLI killed before its first device call): not known
        ("other:10", {"other:10": STALE}, False, True),  # owner without a start time
        (None, {}, True, False),
        ("", {}, True, False),
        ("garbage", {"garbage": STALE}, True, False),
        ("other:10:5", {"other:10:5": NOW + timedelta(seconds=60)}, False, False),  # skewed clock: just now
    ],
)
def test_owner_gone(owner: str | None, leases: dict, dead_here: bool, gone: bool) -> None:
    assert owner_gone(owner, this_host="me", now=NOW, service_down_time=10.0, leases=leases,
                      dead_here=lambda _o: dead_here) is gone  # fmt: skip


@pytest.mark.parametrize(("name", "lease"), [("ha", False), ("node-1.example", False), ("ha:12:34", True), ("ha:12", True)])
def test_lease_names_are_never_host_names(name: str, lease: bool) -> None:
    from storage.hosts.service import HOST_NAME_RE

    assert is_lease_name(name) is lease
    assert bool(HOST_NAME_RE.fullmatch(name)) is not lease


def _set(st: storage.Storage, vid: str, status: str, owner: str) -> None:
    with st.catalog.session() as s:
        row = s.get(VolumeRow, vid)
        assert row is not None
        row.status, row.task_owner = status, owner


def _lease(st: storage.Storage, name: str, beat: datetime) -> None:
    with st.catalog.session() as s:
        s.add(ServiceRow(name=name, pools={}, capabilities={}, last_heartbeat=beat, started_at=beat, updated_at=beat))


def test_agent_settles_volumes_of_a_gone_replica_of_another_machine(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "d", f'host_name = "ha"\n[pools.default]\ndriver = "file"\npath = "{tmp_path / "pool"}"\n')
    with storage.open(cfg) as st:
        made = st.volumes.create("made", "4M").id  # its file exists: creating settles to available
        doomed = st.volumes.create("doomed", "4M").id  # deleting: the delete is finished
        busy = st.volumes.create("busy", "4M").id  # a host call on it still runs: left alone
        alive = st.volumes.create("alive", "4M").id  # its replica's lease is fresh: left alone
        img = tmp_path / "pool" / "volumes"
        now = datetime.now(UTC)
        _set(st, made, "creating", "elsewhere:100:1")
        _set(st, doomed, "deleting", "elsewhere:100:1")
        _set(st, busy, "extending", "elsewhere:100:1")
        _set(st, alive, "extending", "elsewhere:200:1")
        _lease(st, "elsewhere:100:1", now - timedelta(seconds=30))
        _lease(st, "elsewhere:200:1", now)
        with st.catalog.session() as s:
            s.add(Job(kind="host-call", state="running", queue="host.ha", params={"method": "extend_volume", "volume_id": busy}))
        assert [h.name for h in st.hosts.list()] == ["ha"]  # leases are not hosts
        assert settle_dead_owners(st.catalog, st.local_host, "ha", 10.0) == 2
        got = {v.name: v.status.value for v in st.volumes.list()}
        assert got == {"made": "available", "busy": "extending", "alive": "extending"}, got
        assert (img / f"{made}.img").exists() and not (img / f"{doomed}.img").exists()
        assert settle_dead_owners(st.catalog, st.local_host, "hb", 10.0) == 0  # another host's volumes: not ours
        with st.catalog.session() as s:
            s.query(Job).delete()
        assert settle_dead_owners(st.catalog, st.local_host, "ha", 10.0) == 1  # the call ended: now settled
        assert st.volumes.get("busy").status.value == "available"
        assert st.volumes.get("alive").status.value == "extending"
        assert prune_leases(st.catalog, now + timedelta(days=2)) == 2
        assert prune_leases(st.catalog) == 0


def test_lease_beats_and_is_dropped_on_stop(tmp_path: Path) -> None:
    with storage.open(write_config(tmp_path / "d")) as st:
        lease = ReplicaLease(st.catalog, 0.05).start()
        try:
            with st.catalog.session() as s:
                first = s.get(ServiceRow, lease.name).last_heartbeat  # type: ignore[union-attr]
            import time

            time.sleep(0.3)
            with st.catalog.session() as s:
                assert s.get(ServiceRow, lease.name).last_heartbeat > first  # type: ignore[union-attr]
            assert lease.name not in [h.name for h in st.hosts.list()]
        finally:
            lease.stop()
        with st.catalog.session() as s:
            assert s.get(ServiceRow, lease.name) is None


def test_storage_lease_only_with_a_queue_outside_the_agent(tmp_path: Path) -> None:
    """``Storage.ensure_lease`` (what a CLI command's first device call through a queue runs) does
    nothing without a work queue (a single host: the signal-0 probe is enough) nor in the agent; a
    role-``cli`` lease with one (tests/test_cli_lease.py kills such a command)."""
    with storage.open(write_config(tmp_path / "d")) as st:
        st.lease_on_demand = True
        st.ensure_lease()
        assert st._lease is None
        with st.catalog.session() as s:
            assert [n for n in s.scalars(select(ServiceRow.name)) if is_lease_name(n)] == []
    with storage.open(write_config(tmp_path / "e")) as st:
        lease = ReplicaLease(st.catalog, 0.05, role="cli").start()
        try:
            with st.catalog.session() as s:
                assert s.get(ServiceRow, lease.name).capabilities == {"role": "cli"}  # type: ignore[union-attr]
        finally:
            lease.stop()
