"""Work queues on the real private PostgreSQL with real `storagectl agent` processes.

An API replica (`storagectl serve`, host_name ha, [cluster] queue = "procrastinate") never touches
a device: a volume's create, extend and delete become host-call jobs on queue host.ha, run by
agent ha in its own pool directory; a replica configured as hb sends its work to agent hb only.
kill -9 of the agent in the middle of a (bandwidth-limited, so slow) backup, once two of its packs
are stored: the restarted agent finds the job stalled, runs it again (attempt 2) and it ends,
finished (reusing the stored chunks; the backup restores byte-identical) or failed with a reason;
the volume is never left in a transitional status; a create sent while the agent is dead waits in
its queue and is made when the agent is back. Shared work of a killed agent is finished by another
agent. Takes ~60-90 s on a loaded 2-core machine.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from tests.api_server import ApiServer, make_tokens
from tests.test_hosts_agent import AgentProc, wait_for

pytestmark = pytest.mark.slow
DOWN_TIME = 4.0
ON_HA = {"node": "ha"}  # the pool labels that place a new volume on host ha (the scheduler chooses among hosts)  # service_down_time: also how long a silent queue worker takes to count as stalled


def cluster_config(root: Path, name: str, url: str, pool: Path) -> Path:
    etc = root / f"etc-{name}-{pool.name}"  # its own config dir (and agent log); one data dir for all
    etc.mkdir(parents=True, exist_ok=True)
    path = etc / "storage.toml"
    path.write_text(
        f'host_name = "{name}"\ndata_dir = "{root / "data"}"\n'
        f'[catalog]\nurl = "{url}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{pool}"\nlabels = {{ node = "{name}" }}\n'
        f'[cluster]\nheartbeat_interval = 0.5\nservice_down_time = {DOWN_TIME}\nqueue = "procrastinate"\n'
        f"remote_call_timeout = 60\n"
        # packs of 1 MiB (not 256 MiB streamed ones), so a kill mid-backup finds some stored for the re-run to reuse
        f'[backup]\nstream_pack_size = "1M"\n'
    )
    return path


@pytest.fixture
def bed(tmp_path: Path, pg_database: str) -> Iterator[dict]:
    pools = {"ha": tmp_path / "pool-ha", "hb": tmp_path / "pool-hb"}
    configs = {name: cluster_config(tmp_path, name, pg_database, pool) for name, pool in pools.items()}
    api_config = cluster_config(tmp_path, "ha", pg_database, tmp_path / "pool-of-the-api-never-used")
    agents = {name: AgentProc(cfg).start() for name, cfg in configs.items()}
    server = ApiServer(api_config)
    server.tokens = make_tokens(api_config)
    server.start()
    bed = {"pools": pools, "configs": configs, "api_config": api_config, "agents": agents, "server": server,
           "url": pg_database}  # fmt: skip
    try:
        with server.client("reader") as c:
            wait_for("both hosts up", lambda: sorted(h["name"] for h in c.get("/hosts").json() if h["state"] == "up") == ["ha", "hb"], 30)
        yield bed
    finally:
        server.stop()
        for a in bed["agents"].values():
            a.stop()
        for a in bed["agents"].values():
            assert "Traceback" not in a.log.read_text(), a.log.read_text()[-3000:]


def _pid(agent: AgentProc) -> int:
    assert agent.proc is not None
    return agent.proc.pid


def _owner_pid(owner: str | None) -> int:
    assert owner, owner
    return int(owner.rsplit(":", 2)[1])


def test_volume_work_runs_on_the_owning_hosts_agent(bed: dict) -> None:
    server, pools, agents = bed["server"], bed["pools"], bed["agents"]
    with server.client() as c:
        r = c.post("/volumes", json={"name": "v1", "size": "8M", "pool_labels": ON_HA})
        assert r.status_code == 201, r.text
        vol = r.json()
        assert vol["host"] == "ha" and vol["status"] == "available"
        img = pools["ha"] / "volumes" / f"{vol['id']}.img"
        assert img.stat().st_size == 8 << 20
        assert not (bed["api_config"].parent.parent / "pool-of-the-api-never-used").exists()
        r = c.post("/volumes/v1/extend", json={"size": "16M"})
        assert r.status_code == 200 and r.json()["size_bytes"] == 16 << 20, r.text
        assert img.stat().st_size == 16 << 20
        calls = c.get("/jobs", params={"kind": "host-call", "limit": 1000}).json()
        assert calls and {j["queue"] for j in calls} == {"host.ha"}
        assert {j["state"] for j in calls} == {"succeeded"}
        assert {_owner_pid(j_owner) for j_owner in _owners(bed, "host.ha")} == {_pid(agents["ha"])}
        methods = {j["params"]["method"] for j in calls}
        assert {"create_volume", "extend_volume"} <= methods
        assert c.delete("/volumes/v1").status_code == 204
        assert not img.exists()

    # the library on host hb, the volume placed on hb by name: made by agent hb, in hb's pool only
    from storage.scheduler import validate_hints

    with storage.open(bed["configs"]["hb"]) as st:
        v2 = st.volumes.create("v2", "8M", hints=validate_hints(host="hb"))
        assert v2.host == "hb"
        assert (pools["hb"] / "volumes" / f"{v2.id}.img").exists()
        assert not (pools["ha"] / "volumes" / f"{v2.id}.img").exists()
        # a backup from the library on hb itself: its snapshot made by agent hb, its data read here
        backup = st.backups.create(f"volume:{v2.id}")
        assert backup.status == "available" and backup.size_bytes == 8 << 20
        st.volumes.delete("v2", cascade=True)
    assert {_owner_pid(o) for o in _owners(bed, "host.hb")} == {_pid(agents["hb"])}
    assert {_owner_pid(o) for o in _owners(bed, "host.ha")} == {_pid(agents["ha"])}


def _reading(job: dict) -> bool:
    assert job["state"] in ("queued", "running"), (job["error"], job["message"])
    return job["bytes_done"] > 0


def _owners(bed: dict, queue: str) -> list[str]:
    """Who ran each job of a queue (the ``owner`` column is not in the API's job view)."""
    from sqlalchemy import select

    from storage.catalog.api_tables import Job

    with storage.open(bed["api_config"]) as st, st.catalog.session() as s:
        return [o for o in s.scalars(select(Job.owner).where(Job.queue == queue))]


def test_agent_killed_mid_backup_job_is_retried_and_ends(bed: dict) -> None:
    server, pools, agents = bed["server"], bed["pools"], bed["agents"]
    with server.client() as c:
        r = c.post("/volumes", json={"name": "vb", "size": "8M", "pool_labels": ON_HA})
        assert r.status_code == 201, r.text
        vol = r.json()
        (pools["ha"] / "volumes" / f"{vol['id']}.img").write_bytes(os.urandom(8 << 20))
        r = c.post("/backups", json={"volume": "vb", "bandwidth_limit": "1M"})  # ~8 s of reading
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        wait_for("backup reading", lambda: _reading(c.get(f"/jobs/{job_id}").json()), 60)
        # packs of 1 MiB (the bandwidth limit): kill once two are stored with their index, for the re-run to reuse
        data_dir = pools["ha"].parent / "data"
        wait_for("two packs indexed", lambda: _reading(c.get(f"/jobs/{job_id}").json())
                 and len([p for p in data_dir.rglob("index/*") if p.is_file()]) >= 2, 60)  # fmt: skip
        job = c.get(f"/jobs/{job_id}").json()
        assert job["state"] == "running" and job["queue"] == "host.ha" and job["attempts"] == 1, job
        agents["ha"].signal(signal.SIGKILL)
        agents["ha"].wait()
        agents["ha"] = AgentProc(bed["configs"]["ha"]).start()
        wait_for("backup job ended", lambda: c.get(f"/jobs/{job_id}").json()["state"] not in ("queued", "running"), 90)
        job = c.get(f"/jobs/{job_id}").json()
        assert job["attempts"] == 2, job
        # the re-run finished the work (its first run's unfinished record dropped, chunks reused)
        assert job["state"] == "succeeded", (job["error"], job["message"])
        assert c.get("/volumes/vb").json()["status"] == "available"  # never left transitional
        backup = c.get(f"/backups/{job['params']['backup_id']}").json()
        assert backup["status"] == "available" and backup["size_bytes"] == 8 << 20, backup
        # the chunks attempt 1 stored were found in the repository, not uploaded again
        assert backup["dedup_chunk_count"] >= 2 and backup["new_chunk_count"] <= 6, backup
        print(f"\nkill -9 mid backup: attempt 2 found {backup['dedup_chunk_count']} of {backup['chunk_count']} chunks "
              f"stored by attempt 1, uploaded {backup['new_chunk_count']} ({backup['stored_bytes']} bytes)")
        r = c.post(f"/backups/{backup['id']}/restore", json={"new_volume_name": "vr"})
        assert r.status_code == 202, r.text
        restore_id = r.json()["id"]
        wait_for("restore ended", lambda: c.get(f"/jobs/{restore_id}").json()["state"] not in ("queued", "running"), 60)
        restored = c.get(f"/jobs/{restore_id}").json()
        where = restored["params"]["host"]  # the scheduler's choice (hb: more room), on its queue
        assert restored["state"] == "succeeded" and restored["queue"] == f"host.{where}", restored
        vr = c.get("/volumes/vr").json()
        assert vr["host"] == where
        original = (pools["ha"] / "volumes" / f"{vol['id']}.img").read_bytes()
        assert (pools[where] / "volumes" / f"{vr['id']}.img").read_bytes()[: len(original)] == original

    # the agent dies again; a create sent meanwhile waits in host.ha's queue and is made when it is back
    import threading

    agents["ha"].signal(signal.SIGKILL)
    agents["ha"].wait()
    answer: dict = {}

    def create() -> None:
        with server.client() as c2:
            answer["r"] = c2.post("/volumes", json={"name": "vq", "size": "8M", "pool_labels": ON_HA})

    sender = threading.Thread(target=create)
    sender.start()
    time.sleep(1.0)
    agents["ha"] = AgentProc(bed["configs"]["ha"]).start()
    sender.join(90)
    r = answer["r"]
    assert r.status_code == 201 and r.json()["status"] == "available", r.text
    assert (pools["ha"] / "volumes" / f"{r.json()['id']}.img").stat().st_size == 8 << 20


def test_shared_work_of_a_killed_agent_is_taken_over_by_another(tmp_path: Path, pg_database: str) -> None:
    """Shared work (verify, gc, noop) is any agent's: agent ha killed mid-job, agent hb (never
    started before) finds ha's worker stalled and runs the job again, to the end."""
    configs = {n: cluster_config(tmp_path, n, pg_database, tmp_path / f"pool-{n}") for n in ("ha", "hb")}
    ha = AgentProc(configs["ha"]).start()
    hb: AgentProc | None = None
    try:
        with storage.open(configs["ha"]) as st:
            job = st.jobs.submit("noop", params={"seconds": 6})
            wait_for("noop running on ha", lambda: st.jobs.get(job.id).state.value == "running", 60)
            assert st.jobs.get(job.id).queue == "shared"
            ha.signal(signal.SIGKILL)
            ha.wait()
            hb = AgentProc(configs["hb"]).start()
            final = st.jobs.wait(job.id, 90)
            assert final.state.value == "succeeded", final
            assert final.attempts == 2 and final.result == {"host": "hb", "attempt": 2}, final
            assert "attempt 2: the runner of attempt 1" in (final.message or "")
    finally:
        ha.stop()
        if hb is not None:
            hb.stop()


def test_policy_items_run_on_the_host_that_owns_the_volume(bed: dict) -> None:
    """A policy run on host ha (its agent, through the API; and the library on ha) over a volume on
    hb: the snapshot is a host call on hb's queue, the backup's reads a backup job on hb's queue,
    run by agent hb; nothing touches ha's pool."""
    server, pools, agents = bed["server"], bed["pools"], bed["agents"]
    with server.client() as c:
        r = c.post("/volumes", json={"name": "pv", "size": "8M", "pool_labels": {"node": "hb"}, "labels": {"pol": "x"}})
        assert r.status_code == 201, r.text
        vol = r.json()
        assert vol["host"] == "hb"
        data = os.urandom(8 << 20)
        (pools["hb"] / "volumes" / f"{vol['id']}.img").write_bytes(data)
        for kind in ("snapshot", "backup"):
            r = c.post("/policies", json={"name": f"p-{kind}", "kind": kind, "schedule": "@daily",
                                          "selector": {"labels": {"pol": "x"}}, "retention": {"keep_last": 3}})  # fmt: skip
            assert r.status_code == 201, r.text
        # through the API: a policy-run job on the API's host (ha), run by agent ha
        for kind in ("snapshot", "backup"):
            r = c.post(f"/policies/p-{kind}/run", json={})
            assert r.status_code == 202, r.text
            job = r.json()
            wait_for(f"{kind} run", lambda: c.get(f"/jobs/{job['id']}").json()["state"] not in ("queued", "running"), 120)
            job = c.get(f"/jobs/{job['id']}").json()
            assert job["state"] == "succeeded" and job["queue"] == "runs.ha", job  # the runs lane of host ha
            outcome = job["result"]["policies"][0]
            assert outcome["status"] == "succeeded" and not outcome["errors"], outcome
        snaps = c.get("/snapshots", params={"volume": "pv"}).json()
        assert len(snaps) == 1, snaps
    # and from the library on ha (not the agent)
    with storage.open(bed["configs"]["ha"]) as st:
        report = st.policies.run(now_policies=["p-backup"])
        assert report.ok, report.failures
        backups = st.backups.list(volume="pv")
        assert len(backups) == 2 and {b.status for b in backups} == {"available"}, backups
        restored = bed["pools"]["hb"].parent / "restored.img"
        st.backups.restore(backups[-1].id, to_path=str(restored))
        assert restored.read_bytes() == data
    with server.client() as c:
        calls = [j for j in c.get("/jobs", params={"kind": "host-call", "limit": 1000}).json()
                 if j["params"].get("volume_id") == vol["id"]]  # fmt: skip
        assert {j["params"]["method"] for j in calls} >= {"create_volume", "create_snapshot"}, calls
        assert {j["queue"] for j in calls} == {"host.hb"}, calls
        reads = [j for j in c.get("/jobs", params={"kind": "backup"}).json() if j["params"]["source"].endswith(vol["id"])]
        assert len(reads) == 2 and {j["queue"] for j in reads} == {"host.hb"}, reads
        assert {j["state"] for j in reads} == {"succeeded"}, reads
    assert {_owner_pid(o) for o in _owners(bed, "host.hb")} == {_pid(agents["hb"])}
    assert not (pools["ha"] / "volumes").exists() or not list((pools["ha"] / "volumes").iterdir())
