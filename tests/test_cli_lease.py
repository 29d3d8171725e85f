"""kill -9 of a `storagectl` command of another machine in the middle of a volume create (queue mode):
the owning host's agent settles the volume once the command's lease is stale.

Private PostgreSQL, procrastinate, a real `storagectl agent` for host ha (the config of
tests/test_queue_agents.py, ``service_down_time`` 4 s). The command runs in a UTS namespace of its
own (``unshare --uts``, host name ``cli-b``), so to the agent its owner string names another machine
whose process it cannot probe. Its create's host call is held on the file pool's lock while the
command is killed, then let go: the agent makes the file, and once the command's lease (taken at
its first device call, storage.hosts.replicas) is older than ``service_down_time`` it settles the
volume ``available`` at the size on disk. Without the lease the volume stayed ``creating`` until
`storagectl check --repair` after an hour. About 15-25 s on a loaded 2-core machine.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import storage
from storage.catalog.services import ServiceRow
from tests.test_drill_agent_kills import has_open, pool_lock
from tests.test_drill_replica_kill import _row
from tests.test_hosts_agent import STORAGECTL, AgentProc, _env, wait_for
from tests.test_queue_agents import DOWN_TIME, cluster_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is needed for a command with its own host name"),
]
MIB = 1 << 20
OTHER = "cli-b"


def _lease(st: storage.Storage, owner: str) -> dict | None:
    with st.catalog.session() as s:
        row = s.get(ServiceRow, owner, populate_existing=True)
        return None if row is None else dict(row.capabilities or {})


def test_cli_killed_mid_create_on_another_machine_is_settled_by_the_agent(tmp_path: Path, pg_database: str) -> None:
    pool = tmp_path / "pool-ha"
    config = cluster_config(tmp_path, "ha", pg_database, pool)
    agent = AgentProc(config).start()
    st = storage.open(config)
    cli: subprocess.Popen | None = None
    try:
        wait_for("host ha up", lambda: [h.state.value for h in st.hosts.list()] == ["up"], 60)
        with pool_lock(pool):
            cli = subprocess.Popen(
                ["unshare", "--uts", "sh", "-c", f'hostname {OTHER} && exec "$@"', "sh",
                 STORAGECTL, "-c", str(config), "volume", "create", "vc", "24M"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True,
            )  # fmt: skip
            wait_for("vc creating", lambda: (_row(st, "vc") or ("", "", ""))[2] == "creating", 60)
            wait_for("agent ha on the pool lock", lambda: has_open(agent, pool / ".lock"), 30)
            vid, owner, _status = _row(st, "vc") or ("", None, "")
            assert (owner or "").startswith(f"{OTHER}:"), owner
            dead_owner = str(owner)
            assert _lease(st, dead_owner) == {"role": "cli"}  # taken at its first device call
            cli.kill()  # SIGKILL: no clean-up of its own
            cli.wait(10)
            t_kill = time.monotonic()
        wait_for("vc settled", lambda: (_row(st, "vc") or ("", "", "gone"))[2] != "creating", DOWN_TIME + 15)
        took = time.monotonic() - t_kill
        vid, owner, status = _row(st, "vc") or ("", None, "gone")
        assert status == "available" and owner is None, (status, owner)
        assert (pool / "volumes" / f"{vid}.img").stat().st_size == 24 * MIB
        assert took >= DOWN_TIME - 1.0, took  # another machine's owner is gone once its lease is stale
        assert [h.name for h in st.hosts.list()] == ["ha"]  # a lease is not a host

        # a command that ends cleanly drops its lease: nothing is left to settle, no row stays
        out = subprocess.run([STORAGECTL, "-c", str(config), "volume", "extend", "vc", "32M"], capture_output=True,
                             text=True, env=_env(), timeout=120, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        with st.catalog.session() as s:
            names = [n for n in s.scalars(select(ServiceRow.name)) if ":" in n]
        assert names == [dead_owner], names  # only the killed command's (stale; pruned after a day)
        assert (pool / "volumes" / f"{vid}.img").stat().st_size == 32 * MIB
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
        st.close()
        agent.stop()
        assert "Traceback" not in agent.log.read_text(), agent.log.read_text()[-3000:]
    print(f"\nstoragectl killed mid create (another machine): volume available {took:.1f}s after the kill "
          f"(service_down_time {DOWN_TIME:g}s)")
