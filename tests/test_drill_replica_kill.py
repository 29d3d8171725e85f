"""kill -9 of an API replica in the middle of a volume create and a delete (queue mode): the
owning host's agent settles the volume, it never stays ``creating``/``deleting``.

The bed of tests/test_queue_agents.py (private PostgreSQL, procrastinate, agents ha and hb).
Create: a second replica runs in a UTS namespace of its own (``unshare --uts``, host name
``replica-b``), so to agent ha its owner string names another machine whose process it cannot
probe; only the replica's lease (storage.hosts.replicas) ageing past ``service_down_time`` tells
it the owner is gone. The create's host call is held on the file pool's lock (as
tests/test_drill_agent_kills.py does) while the replica is killed, then let go: the agent makes
the file, and once the lease is stale it settles the volume ``available`` at the size on disk.
Delete: the bed's replica (this machine: the signal-0 probe) is killed while agent ha is
SIGSTOPped with the delete queued (shorter than ``service_down_time``); the agent then deletes
the file and settles the row away. About 30-40 s on a loaded 2-core machine (bed included).
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

import storage
from storage.catalog.volumes import VolumeRow
from tests.api_server import ApiServer
from tests.test_drill_agent_kills import has_open, in_background, pool_lock, running_call
from tests.test_hosts_agent import wait_for
from tests.test_queue_agents import DOWN_TIME, ON_HA, bed  # noqa: F401 - bed: the fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is needed for a replica with its own host name"),
]
MIB = 1 << 20
OTHER = "replica-b"


def _row(st: storage.Storage, name: str) -> tuple[str, str | None, str] | None:
    with st.catalog.session() as s:
        r = s.execute(select(VolumeRow.id, VolumeRow.task_owner, VolumeRow.status).where(VolumeRow.name == name)).first()
    return None if r is None else (str(r[0]), r[1], str(r[2]))


def test_replica_killed_mid_create_and_mid_delete_volume_is_settled_by_the_agent(bed: dict) -> None:  # noqa: F811
    pools, agents = bed["pools"], bed["agents"]
    remote = ApiServer(bed["api_config"], wrap=("unshare", "--uts", "sh", "-c", f'hostname {OTHER} && exec "$@"', "sh"))
    remote.tokens = bed["server"].tokens
    remote.start()
    st = storage.open(bed["api_config"])
    try:
        # -- create through the replica of "another machine", killed while the host call waits on the pool lock
        with pool_lock(pools["ha"]), bed["server"].client() as c:

            def send() -> httpx.Response:
                with remote.client() as c2:
                    return c2.post("/volumes", json={"name": "vx", "size": "24M", "pool_labels": ON_HA}, timeout=120)

            sender, out = in_background(send)
            wait_for("create_volume running on ha", lambda: (running_call(c, "create_volume") or {}).get("state") == "running", 60)
            wait_for("agent ha on the pool lock", lambda: has_open(agents["ha"], pools["ha"] / ".lock"), 30)
            row = _row(st, "vx")
            assert row is not None and row[2] == "creating" and (row[1] or "").startswith(f"{OTHER}:"), row
            remote.stop(signal.SIGKILL)
            t_kill = time.monotonic()
        sender.join(10)
        assert "exc" in out or out.get("r") is None or out["r"].status_code != 201, out  # the caller died with it
        wait_for("vx settled", lambda: (_row(st, "vx") or ("", "", "gone"))[2] != "creating", DOWN_TIME + 15)
        took_create = time.monotonic() - t_kill
        vid, owner, status = _row(st, "vx") or ("", None, "gone")
        assert status == "available" and owner is None, (status, owner)
        assert (pools["ha"] / "volumes" / f"{vid}.img").stat().st_size == 24 * MIB
        # another machine's owner is gone only once its lease is older than service_down_time
        assert took_create >= DOWN_TIME - 1.0, took_create
        with bed["server"].client() as c:
            got = c.get("/volumes/vx").json()
            assert got["status"] == "available" and got["size_bytes"] == 24 * MIB, got
            assert sorted(h["name"] for h in c.get("/hosts").json()) == ["ha", "hb"]  # leases are not hosts

            # -- delete through the bed's replica (this machine), killed with the delete queued
            img = pools["ha"] / "volumes" / f"{vid}.img"
            agents["ha"].signal(signal.SIGSTOP)
            try:
                sender, out = in_background(lambda: c.delete("/volumes/vx", timeout=60))
                wait_for("vx deleting", lambda: (_row(st, "vx") or ("", "", ""))[2] == "deleting", DOWN_TIME - 2)
                bed["server"].stop(signal.SIGKILL)
                t_kill = time.monotonic()
            finally:
                agents["ha"].signal(signal.SIGCONT)
        wait_for("vx deleted", lambda: _row(st, "vx") is None, DOWN_TIME + 15)
        took_delete = time.monotonic() - t_kill
        assert not img.exists()
    finally:
        remote.stop(signal.SIGKILL)
        st.close()
    print(f"\nreplica killed mid create (other machine): available {took_create:.1f}s after the kill "
          f"(service_down_time {DOWN_TIME:g}s); mid delete (this machine): deleted {took_delete:.1f}s after the kill")
