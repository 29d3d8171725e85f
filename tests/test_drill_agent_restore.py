"""Drill 5 (issue 13): kill -9 the agent while it restores a backup into a new volume on its host.

Cluster mode on the private PostgreSQL with procrastinate (the bed of tests/test_queue_agents.py:
an API replica that never touches a device, agents ha and hb). A 192 MiB volume of random bytes on
host ha is backed up; its restore into a new volume is a job on the queue of the host the
scheduler chose (hb: more room); as soon as the job reports bytes written, that host's agent gets
SIGKILL and is started again. The restarted agent finds the
job stalled and runs it again (attempt 2): it ends succeeded or failed with a reason, and the
target volume is never ``available`` with partial data (its bytes are compared when it is).
About 60-90 s on a loaded 2-core machine.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.test_hosts_agent import AgentProc, wait_for
from tests.test_queue_agents import ON_HA, bed  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
SIZE_MIB = int(os.environ.get("DRILL5_VOLUME_MIB", "192"))


def test_agent_killed_mid_restore_never_leaves_a_partial_available_volume(bed: dict) -> None:  # noqa: F811
    server, pools, agents = bed["server"], bed["pools"], bed["agents"]
    with server.client() as c:
        r = c.post("/volumes", json={"name": "src", "size": f"{SIZE_MIB}M", "pool_labels": ON_HA})
        assert r.status_code == 201, r.text
        src = r.json()
        original = os.urandom(SIZE_MIB * MIB)
        (pools["ha"] / "volumes" / f"{src['id']}.img").write_bytes(original)
        r = c.post("/backups", json={"volume": "src"})
        assert r.status_code == 202, r.text
        backup_job = r.json()["id"]
        wait_for("backup ended", lambda: c.get(f"/jobs/{backup_job}").json()["state"] not in ("queued", "running"), 90)
        job = c.get(f"/jobs/{backup_job}").json()
        assert job["state"] == "succeeded", (job["error"], job["message"])
        backup_id = job["params"]["backup_id"]

        r = c.post(f"/backups/{backup_id}/restore", json={"new_volume_name": "target"})
        assert r.status_code == 202, r.text
        restore_id = r.json()["id"]
        t0 = time.monotonic()
        seen: dict = {}

        def writing() -> bool:
            j = c.get(f"/jobs/{restore_id}").json()
            assert j["state"] in ("queued", "running"), f"the restore ended before the kill: {j}"
            seen.update(j)
            return j["bytes_done"] > 0

        wait_for("restore writing", writing, 60)
        # the scheduler places the new volume (the host with more room: hb, ha holds the source)
        where = seen["queue"].removeprefix("host.")
        assert where in agents and seen["params"]["host"] == where and seen["attempts"] == 1, seen
        agents[where].signal(signal.SIGKILL)
        agents[where].wait()
        t_kill = time.monotonic()
        killed_at = seen["bytes_done"]
        # while the agent is dead, the target is never available
        at_kill = c.get("/volumes/target").json().get("status")  # the first run may have just finished
        if at_kill == "available":
            vid = c.get("/volumes/target").json()["id"]
            assert (pools[where] / "volumes" / f"{vid}.img").read_bytes()[: len(original)] == original
        agents[where] = AgentProc(bed["configs"][where]).start()
        wait_for("restore job ended", lambda: c.get(f"/jobs/{restore_id}").json()["state"] not in ("queued", "running"), 90)
        t_end = time.monotonic()
        job = c.get(f"/jobs/{restore_id}").json()
        assert job["attempts"] == 2, job
        assert job["state"] in ("succeeded", "failed"), job
        if job["state"] == "failed":
            assert job["error"] or job["message"], job  # the reason is named
        vols = {v["name"]: v for v in c.get("/volumes").json()}
        compared = 0
        target = vols.get("target")
        if target is not None:
            wait_for("target settled", lambda: c.get("/volumes/target").json()["status"] in ("available", "error"), 30)
            target = c.get("/volumes/target").json()
            if target["status"] == "available":
                data = (pools[where] / "volumes" / f"{target['id']}.img").read_bytes()
                assert data[: len(original)] == original, "an available target volume holds partial data"
                compared = len(original)
        if job["state"] == "succeeded":
            assert target is not None and target["status"] == "available" and compared == len(original), target
        assert all(v["status"] in ("available", "error") for v in c.get("/volumes").json()), c.get("/volumes").json()
    print(f"\ndrill 5: agent killed {t_kill - t0:.1f}s into a {SIZE_MIB} MiB restore ({killed_at} bytes written, target {at_kill}); "
          f"job {job['state']} after attempt {job['attempts']} ({t_end - t_kill:.1f}s after the kill: "
          f"{(job['error'] or job['message'] or '')[:120]}); target "
          f"{target['status'] if target else 'absent'}, {compared} bytes compared")
