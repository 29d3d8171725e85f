"""Finished host-call job rows are pruned (storage/jobs/prune.py): the pure decisions table-tested;
the delete on the SQLite catalog; and a real `storagectl agent` on the private PostgreSQL with a
work queue pruning them by itself (``[cluster] host_call_retention``), other kinds and recent or
running calls kept. ~10-20 s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import storage
from storage.catalog.api_tables import Job
from storage.jobs.prune import prunable, prune_every, prune_host_calls
from tests.test_hosts_agent import AgentProc, wait_for

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


@pytest.mark.parametrize(("kind", "state", "age", "gone"), [
    ("host-call", "succeeded", DAY + 1, True),
    ("host-call", "failed", DAY, True),  # exactly the retention: goes
    ("host-call", "cancelled", 2 * DAY, True),
    ("host-call", "interrupted", 2 * DAY, True),
    ("host-call", "succeeded", DAY - 1, False),  # younger than the retention
    ("host-call", "running", 2 * DAY, False),  # still running (a stuck one is the queue's business)
    ("host-call", "queued", 2 * DAY, False),
    ("host-call", "succeeded", None, False),  # no finish time recorded
    ("backup", "succeeded", 10 * DAY, False),  # what users look up: kept
    ("restore", "failed", 10 * DAY, False),
    ("policy-run", "succeeded", 10 * DAY, False),
])  # fmt: skip
def test_which_job_rows_are_pruned(kind: str, state: str, age: float | None, gone: bool) -> None:
    finished = None if age is None else NOW - timedelta(seconds=age)
    assert prunable(kind, state, finished, NOW, DAY) is gone
    if finished is not None:  # a naive timestamp (SQLite) is UTC
        assert prunable(kind, state, finished.replace(tzinfo=None), NOW, DAY) is gone


@pytest.mark.parametrize(("retention", "heartbeat", "every"), [
    (DAY, 10, 3600), (3600, 10, 360), (30, 10, 10), (2, 0.5, 0.5), (1e9, 10, 3600),
])  # fmt: skip
def test_how_often_an_agent_prunes(retention: float, heartbeat: float, every: float) -> None:
    assert prune_every(retention, heartbeat) == every


def _add(st: storage.Storage, kind: str, state: str, finished: datetime | None) -> str:
    with st.catalog.session() as s:
        row = Job(kind=kind, state=state, params={}, bytes_done=0, cancel_requested=False, created_at=NOW,
                  updated_at=NOW, finished_at=finished, queue="host.h1")  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def _ids(st: storage.Storage) -> set[str]:
    with st.catalog.session() as s:
        return set(s.scalars(Job.__table__.select().with_only_columns(Job.id)).all())


def _seed(st: storage.Storage, now: datetime, old: float) -> tuple[set[str], set[str]]:
    gone = {_add(st, "host-call", "succeeded", now - timedelta(seconds=old)) for _ in range(5)}
    gone.add(_add(st, "host-call", "failed", now - timedelta(seconds=old)))
    kept = {_add(st, "host-call", "succeeded", now + timedelta(seconds=3600)), _add(st, "host-call", "running", None),
            _add(st, "backup", "succeeded", now - timedelta(seconds=old)),
            _add(st, "restore", "failed", now - timedelta(seconds=old))}  # fmt: skip
    return gone, kept


def test_prune_on_sqlite_in_batches(tmp_path: Path) -> None:
    with storage.open(data_dir=tmp_path) as st:
        gone, kept = _seed(st, NOW, 2 * DAY)
        assert prune_host_calls(st.catalog, retention=DAY, now=NOW, batch=2) == len(gone)
        assert _ids(st) == kept
        assert prune_host_calls(st.catalog, retention=DAY, now=NOW) == 0


@pytest.fixture
def agent_config(tmp_path: Path, pg_database: str) -> Iterator[Path]:
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "storage.toml"
    path.write_text(
        f'host_name = "h1"\ndata_dir = "{tmp_path / "data"}"\n[catalog]\nurl = "{pg_database}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{tmp_path / "pool"}"\n'
        '[cluster]\nheartbeat_interval = 0.3\nservice_down_time = 4\nqueue = "procrastinate"\nhost_call_retention = 2\n'
    )
    yield path


def test_the_agent_prunes_finished_host_calls(agent_config: Path) -> None:
    with storage.open(agent_config) as st:
        now = datetime.now(UTC)
        gone, kept = _seed(st, now, 3)
        agent = AgentProc(agent_config).start()
        try:
            wait_for("old host calls pruned", lambda: not (_ids(st) & gone), 30)
            assert kept <= _ids(st)
            fresh = _add(st, "host-call", "succeeded", datetime.now(UTC))
            assert fresh in _ids(st)  # younger than 2 s: kept for now
            wait_for("the new one pruned once 2 s old", lambda: fresh not in _ids(st), 30)
            assert kept <= _ids(st)
        finally:
            agent.stop()
    assert "pruned" in agent.log.read_text() and "Traceback" not in agent.log.read_text()
