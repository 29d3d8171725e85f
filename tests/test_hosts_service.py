"""st.hosts on a real SQLite catalog: single host stays zero-setup, cluster mode needs heartbeats,
down hosts answer HostUnavailable naming the host, disabled hosts take no new volumes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

import storage
from storage.catalog.base import utcnow
from storage.catalog.db import Catalog, alembic_config, current_revision, HEAD_REVISION
from storage.errors import HostUnavailable, NotFound
from storage.hosts.state import HostState

pytestmark = pytest.mark.both_catalogs  # the services table and volumes.host on SQLite and PostgreSQL

CLUSTER = ('\n[scheduler]\navailability_zone = "az1"\n'
           '[cluster]\nheartbeat_interval = 0.2\nservice_down_time = 1.5\nlabels = {rack = "r1"}\n')


def test_single_host_needs_no_agent(st: storage.Storage) -> None:
    hosts = st.hosts.list()
    assert [(h.name, h.state) for h in hosts] == [(st.settings.host_name, HostState.UP)]
    assert hosts[0].pools["default"]["driver"] == "file" and hosts[0].pools["default"]["free_bytes"] > 0
    vol = st.volumes.create("v1", "8M")
    assert vol.host == st.settings.host_name
    assert st.volumes.show("v1").host_state == "up"
    assert st.volumes.list()[0].host == st.settings.host_name
    assert st.hosts.get(st.settings.host_name).volumes == 1
    assert [(c.host, c.pool, c.up, c.disabled) for c in st.hosts.candidates()] == [(st.settings.host_name, "default", True, False)]


@pytest.fixture
def cluster(config_file: Path) -> Iterator[storage.Storage]:
    config_file.write_text('host_name = "h1"\n' + config_file.read_text() + CLUSTER)  # top-level keys first
    with storage.open(config_file) as s:
        yield s


def _age_heartbeat(st: storage.Storage, name: str, seconds: float) -> None:
    with st.catalog.session() as s:
        s.execute(text("UPDATE services SET last_heartbeat = :t WHERE name = :n"),
                  {"t": utcnow() - timedelta(seconds=seconds), "n": name})


def test_cluster_host_without_agent_takes_no_volumes(cluster: storage.Storage) -> None:
    assert cluster.hosts.list() == []  # in cluster mode only the agent writes the row
    with pytest.raises(HostUnavailable, match="'h1'.*never registered") as err:
        cluster.volumes.create("v1", "8M")
    assert err.value.http_status == 503 and err.value.exit_code == 12 and err.value.details["host"] == "h1"


def test_down_host_answers_host_unavailable_reads_still_work(cluster: storage.Storage) -> None:
    cluster.hosts.heartbeat()
    info = cluster.hosts.get("h1")
    assert info.state is HostState.UP and info.availability_zone == "az1" and info.labels == {"rack": "r1"}
    cluster.volumes.create("v1", "8M")
    cluster.snapshots.create("v1", "s1")
    _age_heartbeat(cluster, "h1", 5)
    assert cluster.hosts.get("h1").state is HostState.DOWN
    for op in (lambda: cluster.volumes.extend("v1", "16M"), lambda: cluster.volumes.attach("v1"),
               lambda: cluster.volumes.delete("v1", cascade=True), lambda: cluster.snapshots.create("v1", "s2"),
               lambda: cluster.snapshots.delete("s1"), lambda: cluster.volumes.clone("v1", "v2"),
               lambda: cluster.volumes.create("v3", "8M")):
        with pytest.raises(HostUnavailable, match="host 'h1'.* is down") as err:
            op()
        assert err.value.details == {"host": "h1", "state": "down"}
    shown = cluster.volumes.show("v1")
    assert shown.status.value == "available" and shown.host_state == "down"
    assert [v.name for v in cluster.volumes.list()] == ["v1"]
    assert [(c.name, c.up) for c in cluster.hosts.candidates()] == [("h1#default", False)]
    cluster.hosts.heartbeat()  # the agent is back
    assert cluster.volumes.extend("v1", "16M").size_bytes == 16 << 20


def test_disabled_host_keeps_its_volumes_takes_no_new_ones(cluster: storage.Storage) -> None:
    cluster.hosts.heartbeat()
    cluster.volumes.create("v1", "8M")
    info = cluster.hosts.disable("h1", "disk swap")
    assert info.state is HostState.DISABLED and info.disabled and info.disabled_reason == "disk swap"
    cluster.hosts.heartbeat()  # a heartbeat keeps the administrator's flag
    assert cluster.hosts.get("h1").disabled_reason == "disk swap"
    with pytest.raises(HostUnavailable, match=r"'h1' is disabled \(disk swap\)") as err:
        cluster.volumes.create("v2", "8M")
    assert err.value.details["state"] == "disabled"
    assert [(c.name, c.disabled, c.disabled_reason) for c in cluster.hosts.candidates()] == [("h1#default", True, "disk swap")]
    assert cluster.volumes.extend("v1", "16M").size_bytes == 16 << 20  # existing volumes still served
    assert cluster.hosts.enable("h1").state is HostState.UP
    assert cluster.hosts.get("h1").disabled_reason is None
    assert cluster.volumes.create("v2", "8M").host == "h1"
    with pytest.raises(NotFound, match="'nope' is not registered"):
        cluster.hosts.disable("nope")


def test_migration_gives_existing_volumes_this_host(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Catalog(url, run_migrations=False)
    cfg = alembic_config(old.engine)
    with old.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        conn.execute(text(
            "INSERT INTO volumes (id, name, size_bytes, pool, status, labels, created_at, updated_at) "
            "VALUES ('00000000-0000-0000-0000-000000000001', 'old', 1048576, 'default', 'available', '{}', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    old.close()
    new = Catalog(url, host_name="node-7")
    try:
        assert current_revision(new.engine) == HEAD_REVISION
        with new.engine.connect() as conn:
            assert conn.execute(text("SELECT host FROM volumes")).scalar() == "node-7"
            assert conn.execute(text("SELECT count(*) FROM services")).scalar() == 0
    finally:
        new.close()


def test_single_host_server_keeps_its_row_fresh(config_file: Path) -> None:
    """storagectl serve's app (no [cluster]) heartbeats for this host without any request."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with storage.open(config_file) as st:
        with TestClient(create_app(st)):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with st.catalog.session() as s:
                    beat = s.execute(text("SELECT last_heartbeat FROM services")).scalar()
                if beat is not None:
                    break
                time.sleep(0.05)
        assert beat is not None
        assert st.hosts.get(st.settings.host_name).state is HostState.UP
