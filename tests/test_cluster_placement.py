"""Placement across hosts: two real agents (ha, hb) on the private PostgreSQL, an API replica
with ``[cluster] queue = "procrastinate"`` whose scheduler reads the services table.

Pool ha's limit is 64 MiB, hb's 56 MiB (file pools with a small ``overcommit_ratio``, so "full"
is real: the file driver refuses past it too). v1 32M goes to ha (most room); v2 40M no longer
fits on ha (capacity filter, said in the explanation) and goes to hb; hb disabled: v3 goes to ha;
a backup of v1 restored into a new volume lands on hb (ha is full), bytes equal; the same restore
from the library and the CLI on the API's host goes the same way (a job on hb's queue). ~50-80 s.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from tests.api_server import STORAGECTL, ApiServer, make_tokens
from tests.test_hosts_agent import AgentProc, wait_for

pytestmark = pytest.mark.slow
MiB = 1 << 20
LIMITS = {"ha": 64 * MiB, "hb": 56 * MiB}


def config(root: Path, name: str, url: str, pool: Path, limit: int) -> Path:
    etc = root / f"etc-{name}-{pool.name}"
    etc.mkdir(parents=True, exist_ok=True)
    vfs = os.statvfs(root)
    ratio = (limit + MiB // 2) / (vfs.f_blocks * vfs.f_frsize)  # total x ratio = the limit (and half a MiB)
    path = etc / "storage.toml"
    path.write_text(
        f'host_name = "{name}"\ndata_dir = "{root / "data"}"\n'
        f'[catalog]\nurl = "{url}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{pool}"\novercommit_ratio = {ratio!r}\n'
        f'[cluster]\nheartbeat_interval = 0.5\nservice_down_time = 4\nqueue = "procrastinate"\nremote_call_timeout = 60\n'
    )
    return path


@pytest.fixture
def bed(tmp_path: Path, pg_database: str) -> Iterator[dict]:
    pools = {n: tmp_path / f"pool-{n}" for n in LIMITS}
    configs = {n: config(tmp_path, n, pg_database, pools[n], LIMITS[n]) for n in LIMITS}
    # the API replica is configured as host "api" with a pool of its own that no host reports
    api_config = config(tmp_path, "api", pg_database, tmp_path / "pool-api-never-used", 1024 * MiB)
    agents = {n: AgentProc(c).start() for n, c in configs.items()}
    server = ApiServer(api_config)
    server.tokens = make_tokens(api_config)
    server.start()
    try:
        with server.client("reader") as c:
            wait_for("both hosts up", lambda: sorted(h["name"] for h in c.get("/hosts").json() if h["state"] == "up") == ["ha", "hb"], 30)
        yield {"pools": pools, "server": server, "api_config": api_config}
    finally:
        server.stop()
        for a in agents.values():
            a.stop()
        for a in agents.values():
            assert "Traceback" not in a.log.read_text(), a.log.read_text()[-3000:]


def _reported(c, host: str, provisioned: int) -> bool:  # type: ignore[no-untyped-def]
    """The host's heartbeat reports ``provisioned`` bytes in its pool and the scheduler sees exactly
    that (a heartbeat read before a volume's row last changed still counts it as pending, once more)."""
    seen = {x["host"]: x["provisioned_bytes"] for x in c.get("/hosts/candidates").json()}
    return c.get(f"/hosts/{host}").json()["pools"]["default"]["provisioned_bytes"] == provisioned == seen.get(host)


def _verdicts(placement: dict) -> dict[str, dict]:
    return {v["host"]: v for v in placement["candidates"]}


def _job(c, job_id: str) -> dict:  # type: ignore[no-untyped-def]
    wait_for(f"job {job_id} done", lambda: c.get(f"/jobs/{job_id}").json()["state"] not in ("queued", "running"), 120)
    job = c.get(f"/jobs/{job_id}").json()
    assert job["state"] == "succeeded", job
    return job


def test_new_volumes_and_restores_are_placed_across_hosts(bed: dict) -> None:
    server, pools = bed["server"], bed["pools"]
    with server.client() as c:
        r = c.post("/volumes", params={"explain": "true"}, json={"name": "v1", "size": "32M"})
        assert r.status_code == 201, r.text
        v1 = r.json()
        assert v1["host"] == "ha" and v1["placement"]["chosen"] == {"host": "ha", "pool": "default"}, v1
        assert _verdicts(v1["placement"])["hb"]["rank"] == 2  # weighed, less room
        assert (pools["ha"] / "volumes" / f"{v1['id']}.img").stat().st_size == 32 * MiB
        assert not (tmp := pools["hb"] / "volumes" / f"{v1['id']}.img").exists(), tmp
        wait_for("ha reports v1", lambda: _reported(c, "ha", 32 * MiB), 10)

        # ha is too full for 40M: refused by the capacity filter, hb takes it
        r = c.post("/volumes", params={"explain": "true"}, json={"name": "v2", "size": "40M"})
        assert r.status_code == 201, r.text
        v2 = r.json()
        assert v2["host"] == "hb", v2
        ha = _verdicts(v2["placement"])["ha"]
        assert ha["refused_by"] == "capacity" and "needs 40M, 32M provisionable" in ha["reason"], ha
        assert (pools["hb"] / "volumes" / f"{v2['id']}.img").stat().st_size == 40 * MiB
        assert c.get("/volumes/v2").json()["host"] == "hb"
        calls = c.get("/jobs", params={"kind": "host-call", "limit": 1000}).json()
        assert {j["queue"] for j in calls if j["params"]["volume_id"] == v2["id"]} == {"host.hb"}
        wait_for("hb reports v2", lambda: _reported(c, "hb", 40 * MiB), 10)

        # hb disabled: the next volume goes to ha, and the explanation names the disabled host
        assert c.post("/hosts/hb/disable", json={"reason": "disk swap"}).status_code == 200
        r = c.post("/volumes", params={"explain": "true"}, json={"name": "v3", "size": "8M"})
        assert r.status_code == 201, r.text
        v3 = r.json()
        assert v3["host"] == "ha", v3
        hb = _verdicts(v3["placement"])["hb"]
        assert hb["refused_by"] == "host_state" and "disabled (disk swap)" in hb["reason"], hb
        # nothing fits (v3 counted on ha before its heartbeat does): NoValidHost naming both refusals
        r = c.post("/volumes", json={"name": "v4", "size": "30M"})
        assert r.status_code >= 400 and "ha#default: capacity" in r.text and "hb#default: host_state" in r.text, r.text
        assert c.get("/volumes/v4").status_code == 404
        assert c.post("/hosts/hb/enable").status_code == 200
        assert c.delete("/volumes/v2").status_code == 204
        wait_for("ha and hb report", lambda: _reported(c, "ha", 40 * MiB) and _reported(c, "hb", 0), 10)

        # a backup of v1 (on ha) restored into a new volume: ha is full, so it lands on hb
        data = os.urandom(32 * MiB)
        (pools["ha"] / "volumes" / f"{v1['id']}.img").write_bytes(data)
        r = c.post("/backups", json={"volume": "v1"})
        assert r.status_code == 202, r.text
        backup_job = _job(c, r.json()["id"])
        backup_id = backup_job["result"]["id"]
        r = c.post(f"/backups/{backup_id}/restore", json={"new_volume_name": "r1"})
        assert r.status_code == 202, r.text
        job = _job(c, r.json()["id"])
        assert job["queue"] == "host.hb" and job["params"]["host"] == "hb", job
        ha = _verdicts(job["params"]["placement"])["ha"]
        assert ha["refused_by"] == "capacity", job["params"]["placement"]
        r1 = c.get("/volumes/r1").json()
        assert r1["host"] == "hb" and r1["status"] == "available", r1
        assert (pools["hb"] / "volumes" / f"{r1['id']}.img").read_bytes() == data
        assert not (pools["ha"] / "volumes" / f"{r1['id']}.img").exists()

        # the same restore from the library and from the CLI on the API's host "api" (no agent, no
        # pool any host reports): the same path as the API (storage/backup/queued.py): placed by
        # the scheduler over every host, written by that host's agent, progress reported here
        assert c.delete("/volumes/r1").status_code == 204
        wait_for("hb reports nothing", lambda: _reported(c, "hb", 0), 10)
        reports: list = []
        with storage.open(bed["api_config"]) as st:
            result = st.backups.restore(backup_id, new_volume_name="r2", progress=reports.append)
            r2 = st.volumes.get("r2")
        assert result.placement and result.placement["chosen"] == {"host": "hb", "pool": "default"}, result
        assert r2.host == "hb" and r2.status == "available", r2
        assert (pools["hb"] / "volumes" / f"{r2.id}.img").read_bytes() == data
        assert reports and reports[-1].done == reports[-1].total == 32 * MiB, reports[-3:]
        jobs = [j for j in c.get("/jobs", params={"kind": "restore"}).json() if j["params"].get("new_volume_name") == "r2"]
        assert len(jobs) == 1 and jobs[0]["queue"] == "host.hb", jobs
        assert c.delete("/volumes/r2").status_code == 204
        wait_for("hb reports nothing", lambda: _reported(c, "hb", 0), 10)
        out = subprocess.run([STORAGECTL, "-c", str(bed["api_config"]), "backup", "restore", backup_id, "--new-volume", "r3"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"restore {backup_id}" in out.stderr and "33.6/33.6 MB" in out.stderr, out.stderr[-2000:]  # the progress bar
        r3 = c.get("/volumes/r3").json()
        assert r3["host"] == "hb" and r3["status"] == "available", r3
        assert (pools["hb"] / "volumes" / f"{r3['id']}.img").read_bytes() == data
