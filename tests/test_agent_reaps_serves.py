"""An agent forgets its host's served exports whose nbdkit died with the process that started
them (a killed `storagectl backup restore --live` or `backup serve`), so a dead row does not refuse
`backup delete` and gc cluster-wide until some command on that host lists serves. Real PostgreSQL
and a real agent process; another host's rows are left alone (only that host can tell)."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest

import storage
from storage.catalog.served import ServedExportRow
from storage.catalog.base import new_id, utcnow
from tests.test_hosts_agent import AgentProc, wait_for
from tests.test_queue_policy_lanes import host_config

pytestmark = pytest.mark.slow


def _row(host: str, process: str) -> ServedExportRow:
    now = utcnow()
    return ServedExportRow(
        id=new_id(), backup_id=new_id(), export_name="e", uri="nbd://127.0.0.1:1/e", listen="127.0.0.1:1",
        host_name=host, process=process, owner=process, cache_bytes=0, size_bytes=1, created_by=None,
        started_at=now, expires_at=now + timedelta(days=365), kind="live-restore", volume_id=new_id(),
    )


def test_agent_forgets_its_hosts_dead_served_exports(tmp_path: Path, pg_database: str) -> None:
    repo = tmp_path / "objects" / "repo"
    repo.mkdir(parents=True)
    config = host_config(tmp_path, "ha", pg_database, repo)
    dead_here, elsewhere = _row("ha", f"{socket.gethostname()}:999999999:1"), _row("hb", "other-machine:4242:1")
    ids = (dead_here.id, elsewhere.id)
    with storage.open(config) as st:
        with st.catalog.session() as s:
            s.add_all([dead_here, elsewhere])
        agent = AgentProc(config).start()
        try:
            def remaining() -> set[str]:
                with st.catalog.session() as s:
                    return {r.id for r in s.query(ServedExportRow).all()}

            wait_for("the agent reaped its dead row", lambda: ids[0] not in remaining(), 60)
            assert ids[1] in remaining()  # another host's row: only that host can tell whether it lives
        finally:
            agent.stop()
        assert "Traceback" not in agent.log.read_text(), agent.log.read_text()[-3000:]
