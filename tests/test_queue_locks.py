"""Per-volume serialisation on the real private PostgreSQL: two jobs with the lock volume:<id>
never run at once, even on a worker that runs several jobs at a time; jobs on two volumes do.
The worker is storage.queue.pq.QueueWorker (what `storagectl agent` runs), in a thread here."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage
from storage.queue.pq import TASK_NAME, QueueWorker, make_app


@pytest.fixture
def queued(tmp_path: Path, pg_database: str):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "storage.toml"
    cfg.write_text(f'host_name = "hl"\ndata_dir = "{tmp_path / "data"}"\n[catalog]\nurl = "{pg_database}"\n'
                   '[cluster]\nheartbeat_interval = 0.5\nservice_down_time = 4\nqueue = "procrastinate"\n')  # fmt: skip
    with storage.open(cfg) as st:
        yield st


def _record(st: storage.Storage, seconds: float) -> str:
    from storage.catalog.api_tables import Job

    with st.catalog.session() as s:
        row = Job(kind="noop", state="queued", params={"seconds": seconds}, bytes_done=0, cancel_requested=False,
                  queue="shared", attempts=0)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def test_volume_lock_serialises_other_volumes_run_together(queued: storage.Storage) -> None:
    st = queued
    app = make_app(st.settings.catalog_url)
    app.open()
    try:
        same = [_record(st, 0.8), _record(st, 0.8)]
        other = [_record(st, 0.8), _record(st, 0.8)]
        for jid in same:
            app.configure_task(TASK_NAME, queue="shared", lock="volume:v1").defer(job_id=jid)
        for i, jid in enumerate(other):
            app.configure_task(TASK_NAME, queue="shared", lock=f"volume:v{i + 2}").defer(job_id=jid)
    finally:
        app.close()
    worker = QueueWorker(st.settings.catalog_url, "hl", st.jobs, concurrency=4, heartbeat_interval=0.5, stalled_after=4)
    worker.start()
    try:
        for jid in same + other:
            assert st.jobs.wait(jid, 60).state.value == "succeeded", st.jobs.get(jid)
    finally:
        worker.stop()
    assert worker.error is None

    def span(jid: str) -> tuple:
        info = st.jobs.get(jid)
        return info.started_at, info.finished_at

    (a0, a1), (b0, b1) = sorted(span(j) for j in same)
    assert a1 <= b0, "two jobs holding volume:v1 overlapped"
    (c0, c1), (d0, d1) = sorted(span(j) for j in other)
    assert d0 < c1, "jobs on two different volumes did not run together on a 4-job worker"
