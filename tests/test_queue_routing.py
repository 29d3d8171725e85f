"""Pure parts of the work queues: routing (queue + lock), the task registry's refusals, typed
errors rebuilt from a job record, the config refusing procrastinate on SQLite, and the job
service's re-delivery rules (attempt n+1 of a job whose runner died; duplicates left alone) on
the SQLite catalog, no queue needed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import storage
from storage.config import load_settings
from storage.errors import Conflict, HostUnavailable, InvalidInput, NotFound, StorageError
from storage.host.remote import error_from_dict
from storage.queue.routing import Route, queues_of_agent, route, run_host, run_queues_of_agent, volume_of
from storage.queue.tasks import REGISTRY, run_task

ROUTES = [
    # kind, params, host -> queue, lock
    ("backup", {"source": "volume:v1", "backup_id": "b"}, "ha", Route("host.ha", "volume:v1")),
    ("backup", {"source": "snapshot:s1", "backup_id": "b"}, "hb", Route("host.hb", None)),
    ("backup", {"source": "path:/x"}, "ha", Route("host.ha", None)),
    ("restore", {"backup_id": "b", "to_volume_id": "v2"}, "hb", Route("host.hb", "volume:v2")),
    ("restore", {"backup_id": "b", "new_volume_name": "n"}, "ha", Route("host.ha", None)),
    ("wipe", {"volume_id": "v3", "wipe": "zero"}, "ha", Route("host.ha", "volume:v3")),
    ("host-call", {"method": "extend_volume", "volume_id": "v4"}, "h.b-c_1", Route("host.h.b-c_1", "volume:v4")),
    ("host-call", {"method": "pool_usage", "volume_id": None}, "ha", Route("host.ha", None)),
    ("policy-run", {"policy_id": "p"}, "ha", Route("runs.ha", None)),  # a lane of its own: it waits on device work
    ("verify", {"backup_id": "b"}, None, Route("shared", None)),
    ("verify", {"backup_id": "b"}, "ha", Route("shared", None)),  # any host can verify
    ("gc", {"repository": "swift://c/p"}, None, Route("shared", "repo:swift://c/p")),
    ("gc", {"repository": None}, None, Route("shared", None)),
    ("noop", {}, None, Route("shared", None)),
]


@pytest.mark.parametrize(("kind", "params", "host", "expected"), ROUTES)
def test_route(kind: str, params: dict, host: str | None, expected: Route) -> None:
    assert route(kind, params, host=host) == expected


@pytest.mark.parametrize(
    ("kind", "host", "match"),
    [
        ("mystery", "ha", "job kind 'mystery' is not accepted; accepted: backup, gc, host-call"),
        ("wipe", None, "a wipe job needs the host that owns its volume"),
        ("backup", "bad host", "host name 'bad host' is not accepted"),
        ("restore", "-x", "host name '-x' is not accepted"),
    ],
)
def test_route_refuses(kind: str, host: str | None, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        route(kind, {"volume_id": "v"}, host=host)


def test_volume_of_and_agent_queues() -> None:
    assert volume_of("backup", {"source": "volume:abc"}) == "abc"
    assert volume_of("backup", {"source": "volume:"}) is None
    assert volume_of("verify", {"volume_id": "x"}) is None
    assert queues_of_agent("ha") == ["host.ha", "shared"]
    assert run_queues_of_agent("ha") == ["runs.ha"]
    with pytest.raises(InvalidInput, match="host name 'bad host' is not accepted"):
        route("policy-run", {"policy_id": "p"}, host="bad host")


def test_every_routed_kind_has_a_task() -> None:
    from storage.queue.routing import KINDS

    assert set(REGISTRY) == set(KINDS)


@pytest.mark.parametrize(
    ("error", "cls", "message"),
    [
        ({"code": "not_found", "message": "volume 'x' does not exist", "details": {"volume": "x"}}, NotFound, "volume 'x'"),
        ({"code": "conflict", "message": "busy"}, Conflict, "busy"),
        ({"code": "host_unavailable", "message": "h down", "details": {"host": "h"}}, HostUnavailable, "h down"),
        ({"code": "no-such-code", "message": "odd"}, StorageError, "odd"),
        (None, StorageError, "without a message"),
        ({"code": "conflict", "details": "not a dict"}, Conflict, "without a message"),
    ],
)
def test_error_from_dict(error: dict | None, cls: type, message: str) -> None:
    exc = error_from_dict(error)
    assert type(exc) is cls and message in exc.message
    if error and isinstance(error.get("details"), dict):
        assert exc.details == error["details"]


def test_procrastinate_queue_refused_on_sqlite(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[cluster]\nqueue = "procrastinate"\n')
    with pytest.raises(InvalidInput, match="cluster.queue 'procrastinate' needs a PostgreSQL catalog.*the catalog is sqlite"):
        load_settings(cfg)
    cfg.write_text(f'data_dir = "{tmp_path}"\n[cluster]\nqueue = "rabbit"\n')
    with pytest.raises(InvalidInput, match="cluster.queue"):
        load_settings(cfg)


def test_tasks_refuse_bad_params(st: storage.Storage) -> None:
    from storage.jobs.service import JobContext

    ctx = JobContext(st.jobs, "j")
    with pytest.raises(InvalidInput, match="job kind 'nope' has no task"):
        run_task(st, "nope", ctx, {})
    with pytest.raises(InvalidInput, match="host call 'open_volume' is not accepted"):
        run_task(st, "host-call", ctx, {"method": "open_volume", "args": {}})
    with pytest.raises(Conflict, match="after its caller stopped waiting"):
        run_task(st, "host-call", ctx, {"method": "create_volume", "args": {}, "deadline": time.time() - 1})
    with pytest.raises(InvalidInput, match="seconds 1000 is not accepted"):
        run_task(st, "noop", ctx, {"seconds": 1000})
    assert run_task(st, "host-call", ctx, {"method": "pool_capabilities", "args": {"pool": "default"}})["thin"] is True


def test_named_job_runs_in_process_on_a_single_host(st: storage.Storage) -> None:
    """No [cluster]: a named task runs in a thread of this process, as jobs always did."""
    assert st.jobs.dispatcher is None
    job = st.jobs.submit("noop", params={"seconds": 0.05})
    final = st.jobs.wait(job.id, 30)
    assert final.state.value == "succeeded" and final.queue is None
    assert final.result == {"host": st.settings.host_name, "attempt": 1}


def test_execute_redelivery_rules(st: storage.Storage) -> None:
    """What a queue's worker sees: a queued job runs (attempt 1); a job left running by a dead
    runner runs again as attempt 2 with the reason in its message; a finished one is left alone."""
    from sqlalchemy import update

    from storage.catalog.api_tables import Job

    jobs = st.jobs
    with st.catalog.session() as s:
        row = Job(kind="noop", state="queued", params={}, bytes_done=0, cancel_requested=False, queue="shared",
                  attempts=0)  # fmt: skip
        s.add(row)
        s.flush()
        jid = row.id
    assert jobs.execute(jid).value == "succeeded"
    assert jobs.get(jid).attempts == 1 and jobs.get(jid).result["attempt"] == 1
    assert jobs.execute(jid).value == "succeeded"  # a duplicate delivery: nothing runs again
    assert jobs.get(jid).attempts == 1
    with st.catalog.session() as s:  # as if its runner was killed mid-way
        s.execute(update(Job).where(Job.id == jid).values(state="running", owner="otherhost:1:1", result=None))
    assert jobs.execute(jid).value == "succeeded"
    info = jobs.get(jid)
    assert info.attempts == 2 and info.result["attempt"] == 2
    assert "attempt 2: the runner of attempt 1 (otherhost:1:1) stopped" in (info.message or "")
    import socket

    dead = f"{socket.gethostname()}:999999:1"  # a process of this host that is gone
    with st.catalog.session() as s:
        queued = Job(kind="noop", state="running", params={}, bytes_done=0, cancel_requested=False, queue="host.x", owner=dead)
        local = Job(kind="noop", state="running", params={}, bytes_done=0, cancel_requested=False, owner=dead)
        s.add_all([queued, local])
        s.flush()
        queued_id, local_id = queued.id, local.id
    assert jobs.recover() == [local_id]  # a queued job is the queue's to deliver again, not marked interrupted
    assert jobs.get(queued_id).state.value == "running" and jobs.get(local_id).state.value == "interrupted"
    assert jobs.execute("no-such-job") is None


def test_host_call_create_and_delete_delivered_again_finish(st: storage.Storage) -> None:
    """A create_volume delivered again (its first runner died after making the file) makes the new
    volume's file again instead of failing on it; attempt 1 still refuses an existing file."""
    from storage.jobs.service import JobContext

    first, again = JobContext(st.jobs, "j1"), JobContext(st.jobs, "j2")
    again.attempt = 2
    args = {"pool": "default", "volume_id": "0b7f6c3e-2a41-4f2e-9d55-0f3c1f5f0a11", "size_bytes": 8 << 20}
    run_task(st, "host-call", first, {"method": "create_volume", "args": args})
    with pytest.raises(Conflict, match="already has an image file"):
        run_task(st, "host-call", first, {"method": "create_volume", "args": args})
    run_task(st, "host-call", again, {"method": "create_volume", "args": {**args, "size_bytes": 16 << 20}})
    path = st.local_host.volume_backend("default").volume_path(args["volume_id"])  # type: ignore[attr-defined]
    assert path.stat().st_size == 16 << 20
    delete = {"pool": "default", "volume_id": args["volume_id"]}
    run_task(st, "host-call", first, {"method": "delete_volume", "args": delete})
    run_task(st, "host-call", again, {"method": "delete_volume", "args": delete})  # already gone: done
    assert not path.exists()


# HostApi calls: which host runs each (storage.host.remote.call_host): volume owner, else target owner, else default
_VOLUMES = {"v-b": "hb", "v-c": "hc"}
_TARGETS = {"iqn.2026-11.org.example:v-b": "hb"}


@pytest.mark.parametrize(("args", "host"), [
    ({"pool": "default", "volume_id": "v-b", "size_bytes": 1}, "hb"),  # create/extend/delete/snapshot
    ({"pool": "default", "source_volume_id": "v-c", "new_volume_id": "n", "size_bytes": 1}, "hc"),  # a clone: its source's host
    ({"spec": {"key": "v-b", "luns": {}}}, "hb"),  # export_target: the spec's key is the volume id
    ({"target_iqn": "iqn.2026-11.org.example:v-b"}, "hb"),  # unexport_target: the export's volume's host
    ({"target_iqn": "iqn.2026-11.org.example:v-b", "lun": 1}, "hb"),  # resize_target
    ({"target_iqn": "iqn.2026-11.org.example:gone"}, "ha"),  # a target no export row names: this host's
    ({"pool": "default", "volume_id": "v-new"}, "ha"),  # no row yet: this host
    ({"pool": "default"}, "ha"),  # pool calls
    ({}, "ha"),  # list_targets, ensure/stop_export_service, export_driver
])  # fmt: skip
def test_host_calls_go_to_the_host_that_owns_what_they_name(args: dict, host: str) -> None:
    from storage.host.remote import call_host

    assert call_host(args, default="ha", host_of_volume=_VOLUMES.get, host_of_target=_TARGETS.get) == host


@pytest.mark.parametrize(
    ("own", "serving", "expected"),
    [
        ("ha", {"ha": True, "hb": True}, "ha"),  # this replica's host serves: its own lane
        ("ha", {"ha": False, "hc": True, "hb": True}, "hb"),  # its agent is down: the first serving host by name
        ("api1", {"hb": True, "ha": True}, "ha"),  # an API-only machine (no agent of its own)
        ("ha", {"ha": False, "hb": False}, None),  # nobody serves: refused, never queued where no one takes it
        ("ha", {}, None),
    ],
)
def test_run_host(own: str, serving: dict[str, bool], expected: str | None) -> None:
    assert run_host(own, serving) == expected
