"""kill -9 of a host agent in the middle of a volume create and an extend; two API replicas racing.

The bed of tests/test_queue_agents.py (private PostgreSQL, procrastinate, agents ha and hb, an API
replica that never touches a device). To be sure the agent dies *inside* the device step, the test
takes the file pool's own capacity lock (the ``flock`` on ``<pool>/.lock`` that every create and
extend of that pool takes, as a concurrent create on the host would): the agent's job opens the
lock file and blocks on it; the test sees the open file in ``/proc/<agent>/fd``, kills the agent,
lets go of the lock and starts the agent again. The restarted agent finds the job stalled and runs
it again (attempt 2): the caller's request ends with the volume ``available`` at the size on disk,
never ``creating``/``extending``. While the agent is dead its host shows ``down`` and calls on its
volumes answer 503 naming it, at once (in queue mode; tests/test_hosts_agent.py proves the same
without a queue). Two replicas (two ``storagectl serve`` on the same PostgreSQL) sending the same
extend or delete at once: exactly one wins, the other gets 409 naming the status.
The kill during a backup is tests/test_queue_agents.py::test_agent_killed_mid_backup_job_is_retried_and_ends,
during a restore tests/test_drill_agent_restore.py. About 30-50 s each on a loaded 2-core machine (bed included).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api_server import ApiServer
from tests.test_hosts_agent import AgentProc, ctl, wait_for  # noqa: F401 - ctl: the fixture
from tests.test_queue_agents import DOWN_TIME, ON_HA, bed  # noqa: F401 - bed: the fixture

pytestmark = pytest.mark.slow
MIB = 1 << 20


@contextmanager
def pool_lock(pool: Path) -> Iterator[None]:
    """Hold the file pool's capacity lock (what a create or extend on that host holds meanwhile)."""
    with open(pool / ".lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def has_open(agent: AgentProc, path: Path) -> bool:
    """The agent process has ``path`` open (its job is inside the driver, waiting on the lock)."""
    assert agent.proc is not None
    fds = Path(f"/proc/{agent.proc.pid}/fd")
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue
    return False


def running_call(c: httpx.Client, method: str) -> dict | None:
    for j in c.get("/jobs", params={"kind": "host-call", "limit": 1000}).json():
        if j["params"]["method"] == method and j["state"] in ("queued", "running"):
            return j
    return None


def in_background(fn) -> tuple[threading.Thread, dict]:  # type: ignore[no-untyped-def]
    out: dict = {}

    def run() -> None:
        try:
            out["r"] = fn()
        except BaseException as exc:  # noqa: BLE001 - asserted by the caller
            out["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def kill_mid_call(bed: dict, c: httpx.Client, method: str, send) -> tuple[dict, threading.Thread, dict, float]:  # type: ignore[no-untyped-def]
    """Send a request (``send``, in a thread) whose host call ``method`` blocks in agent ha on the
    pool lock; kill -9 the agent there; let go of the lock. Returns the call's job as seen before the
    kill (attempt 1), the sender thread and its answer box, and when the agent was killed."""
    pools, agents = bed["pools"], bed["agents"]
    with pool_lock(pools["ha"]):
        sender, out = in_background(send)
        def started() -> bool:
            assert "r" not in out and "exc" not in out, f"the request ended before the kill: {out}"
            return (running_call(c, method) or {}).get("state") == "running"

        wait_for(f"{method} running on ha", started, 60)
        wait_for("agent ha inside the driver, on the pool lock", lambda: has_open(agents["ha"], pools["ha"] / ".lock"), 30)
        job = running_call(c, method)
        assert job is not None and job["attempts"] == 1 and job["queue"] == "host.ha", job
        agents["ha"].signal(signal.SIGKILL)
        agents["ha"].wait()
        t_kill = time.monotonic()
    return job, sender, out, t_kill


def finish(bed: dict, sender: threading.Thread, out: dict, t_kill: float) -> tuple[httpx.Response, float]:
    bed["agents"]["ha"] = AgentProc(bed["configs"]["ha"]).start()
    sender.join(90)
    assert not sender.is_alive(), "the request did not end within 90 s of the agent's restart"
    if "exc" in out:
        raise out["exc"]
    return out["r"], time.monotonic() - t_kill


def settled(c: httpx.Client) -> None:
    vols = c.get("/volumes").json()
    assert all(v["status"] in ("available", "error") for v in vols), [(v["name"], v["status"]) for v in vols]


def test_agent_killed_mid_create_then_mid_extend_both_finish_on_attempt_2(bed: dict, ctl) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """One bed for both (a bed costs ~15 s to start)."""
    figures = killed_mid_create(bed)
    killed_mid_extend(bed, ctl)
    print(figures)  # after the extend's `storagectl` calls (the ctl fixture reads what was printed before)


def killed_mid_create(bed: dict) -> str:
    pools = bed["pools"]
    with bed["server"].client() as c:

        def send() -> httpx.Response:
            with bed["server"].client() as c2:
                return c2.post("/volumes", json={"name": "vc", "size": "24M", "pool_labels": ON_HA}, timeout=120)

        job, sender, out, t_kill = kill_mid_call(bed, c, "create_volume", send)
        # while the agent is dead the volume is creating (its caller is alive and waiting), never available
        assert c.get("/volumes/vc").json()["status"] == "creating"
        r, took = finish(bed, sender, out, t_kill)
        again = c.get(f"/jobs/{job['id']}").json()
        assert again["attempts"] == 2 and again["state"] in ("succeeded", "failed"), again
        assert "attempt 2" in (again["message"] or ""), again
        if again["state"] == "failed":  # the other accepted outcome: error named, volume not left creating
            assert r.status_code >= 400 and r.json()["error"]["message"], r.text
            assert c.get("/volumes/vc").status_code == 404 or c.get("/volumes/vc").json()["status"] == "error"
        else:
            assert r.status_code == 201, r.text
            vol = r.json()
            assert vol["status"] == "available" and vol["size_bytes"] == 24 * MIB and vol["host"] == "ha", vol
            assert (pools["ha"] / "volumes" / f"{vol['id']}.img").stat().st_size == 24 * MIB
        settled(c)
    return (f"\nkill -9 mid create: job {again['state']} on attempt {again['attempts']}, "
            f"answer {r.status_code} {took:.1f}s after the kill")


def killed_mid_extend(bed: dict, ctl) -> None:  # type: ignore[no-untyped-def]
    """The same during an extend; the agent stays down until its host shows ``down`` and a call on
    another of its volumes answers 503 naming it, at once; then it is started again."""
    pools = bed["pools"]
    with bed["server"].client() as c:
        for name in ("ve", "other"):
            r = c.post("/volumes", json={"name": name, "size": "8M", "pool_labels": ON_HA})
            assert r.status_code == 201, r.text
        vid = c.get("/volumes/ve").json()["id"]
        img = pools["ha"] / "volumes" / f"{vid}.img"
        data = os.urandom(8 * MIB)
        img.write_bytes(data)

        def send() -> httpx.Response:
            with bed["server"].client() as c2:
                return c2.post("/volumes/ve/extend", json={"size": "16M"}, timeout=120)

        job, sender, out, t_kill = kill_mid_call(bed, c, "extend_volume", send)
        assert c.get("/volumes/ve").json()["status"] == "extending"
        # the agent stays down: its host is shown down within the heartbeat timeout, its volumes answer 503 at once
        took_down = wait_for("ha down", lambda: {h["name"]: h["state"] for h in c.get("/hosts").json()}["ha"] == "down",
                             DOWN_TIME + 5)  # fmt: skip
        start = time.monotonic()
        r503 = c.post("/volumes/other/extend", json={"size": "16M"})
        answer_s = time.monotonic() - start
        assert r503.status_code == 503 and answer_s < 5, (r503.status_code, r503.text, answer_s)
        assert r503.json()["error"]["details"]["host"] == "ha" and "'ha'" in r503.json()["error"]["message"], r503.text
        listed = ctl(bed["api_config"], "hosts", "list", "--json")
        assert listed.returncode == 0 and {h["name"]: h["state"] for h in json.loads(listed.stdout)}["ha"] == "down"
        r, took = finish(bed, sender, out, t_kill)
        again = c.get(f"/jobs/{job['id']}").json()
        assert again["attempts"] == 2 and again["state"] in ("succeeded", "failed"), again
        vol = c.get("/volumes/ve").json()
        assert vol["status"] in ("available", "error"), vol
        if vol["status"] == "available":  # the catalog's size is the file's, whichever it is
            assert vol["size_bytes"] == img.stat().st_size, (vol, img.stat().st_size)
        if again["state"] == "succeeded":
            assert r.status_code == 200 and r.json()["size_bytes"] == 16 * MIB, r.text
            assert img.stat().st_size == 16 * MIB
        else:
            assert r.status_code >= 400 and r.json()["error"]["message"], r.text
        assert img.read_bytes()[: len(data)] == data  # the data survived the kill and the re-run
        settled(c)
    print(f"\nkill -9 mid extend: host down {took_down:.1f}s after the kill, 503 in {answer_s:.2f}s; "
          f"job {again['state']} on attempt {again['attempts']}, answer {r.status_code} {took:.1f}s after the kill")


def _race(servers: list[ApiServer], method: str, path: str,
          body: dict | None = None) -> tuple[list[httpx.Response | None], list[threading.Thread]]:  # fmt: skip
    """The same request through each replica at once (a barrier so both are in flight together)."""
    barrier = threading.Barrier(len(servers))
    answers: list[httpx.Response | None] = [None] * len(servers)

    def one(i: int) -> None:
        with servers[i].client() as c:
            barrier.wait(10)
            answers[i] = c.request(method, path, json=body, timeout=60)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(servers))]
    for t in threads:
        t.start()
    return answers, threads


def test_two_replicas_racing_on_one_volume_one_wins_the_other_409(bed: dict) -> None:  # noqa: F811
    """Two extends, then two deletes of one volume through two `storagectl serve` on one PostgreSQL.
    The winner's device call is held in agent ha (the pool lock for the extend, SIGSTOP of the agent
    for the delete, shorter than service_down_time) so both requests overlap for sure."""
    pools, agents, first = bed["pools"], bed["agents"], bed["server"]
    second = ApiServer(bed["api_config"])
    second.tokens = first.tokens
    second.start()
    try:
        with first.client() as c:
            r = c.post("/volumes", json={"name": "vr", "size": "8M", "pool_labels": ON_HA})
            assert r.status_code == 201, r.text
            vid = r.json()["id"]
            img = pools["ha"] / "volumes" / f"{vid}.img"

            with pool_lock(pools["ha"]):
                answers, threads = _race([first, second], "POST", "/volumes/vr/extend", {"size": "16M"})
                wait_for("the loser's answer", lambda: any(a is not None for a in answers), 30)
                assert c.get("/volumes/vr").json()["status"] == "extending"
            for t in threads:
                t.join(60)
            codes = sorted(a.status_code for a in answers)  # type: ignore[union-attr]
            assert codes == [200, 409], [a.text for a in answers]  # type: ignore[union-attr]
            loser = next(a for a in answers if a.status_code == 409)  # type: ignore[union-attr]
            assert "extending" in loser.json()["error"]["message"], loser.text
            assert c.get("/volumes/vr").json()["size_bytes"] == 16 * MIB == img.stat().st_size

            agents["ha"].signal(signal.SIGSTOP)
            try:
                answers, threads = _race([first, second], "DELETE", "/volumes/vr")
                wait_for("the loser's answer", lambda: any(a is not None for a in answers), DOWN_TIME - 1)
            finally:
                agents["ha"].signal(signal.SIGCONT)
            for t in threads:
                t.join(60)
            codes = sorted(a.status_code for a in answers)  # type: ignore[union-attr]
            assert codes == [204, 409], [a.text for a in answers]  # type: ignore[union-attr]
            loser = next(a for a in answers if a.status_code == 409)  # type: ignore[union-attr]
            assert "deleting" in loser.json()["error"]["message"], loser.text
            assert c.get("/volumes/vr").status_code == 404 and not img.exists()
            settled(c)
    finally:
        second.stop()


def test_agent_down_past_the_call_timeout_create_ends_error_never_creating(bed: dict, tmp_path: Path) -> None:  # noqa: F811
    """Agent ha killed mid create and not started again within the caller's ``remote_call_timeout``
    (5 s here): the request answers 503 naming the host and the call after that timeout (not twice
it: the clean-up does not wait for the same silent host again), the volume ends ``error`` (the
    cleanup could not reach the host either), never ``creating``; when the agent is back, the
    re-delivered create is refused as too late (no file appears) and the volume can be deleted."""
    pools, agents = bed["pools"], bed["agents"]
    text = bed["api_config"].read_text()
    assert "remote_call_timeout = 60" in text
    fast_config = tmp_path / "etc-fast" / "storage.toml"
    fast_config.parent.mkdir()
    fast_config.write_text(text.replace("remote_call_timeout = 60", "remote_call_timeout = 5"))
    fast = ApiServer(fast_config)
    fast.tokens = bed["server"].tokens
    fast.start()
    try:
        with fast.client() as c:

            def send() -> httpx.Response:
                with fast.client() as c2:
                    return c2.post("/volumes", json={"name": "vt", "size": "8M", "pool_labels": ON_HA}, timeout=120)

            job, sender, out, t_kill = kill_mid_call(bed, c, "create_volume", send)
            sender.join(60)
            assert not sender.is_alive()
            r = out["r"]
            gave_up = time.monotonic() - t_kill
            assert r.status_code == 503, r.text
            assert gave_up < 9, gave_up  # one remote_call_timeout (5 s), not a second one for the clean-up
            err = r.json()["error"]
            assert err["details"]["host"] == "ha" and "create_volume" in err["message"], err
            vol = c.get("/volumes/vt").json()
            assert vol["status"] == "error", vol
            assert vol["error_reason"] == f"create failed: {err['message']}", vol  # why, on the volume itself
            agents["ha"] = AgentProc(bed["configs"]["ha"]).start()
            wait_for("the stalled create re-delivered and refused",
                     lambda: c.get(f"/jobs/{job['id']}").json()["state"] not in ("queued", "running"), 60)  # fmt: skip
            again = c.get(f"/jobs/{job['id']}").json()
            # its caller cancelled it on giving up: attempt 2 honours that (or refuses it as past its deadline)
            assert again["attempts"] == 2 and again["state"] in ("cancelled", "failed"), again
            if again["state"] == "failed":
                assert "deadline passed" in again["error"]["message"], again
            assert not (pools["ha"] / "volumes" / f"{vol['id']}.img").exists()
            assert c.get("/volumes/vt").json()["status"] == "error"
            assert c.delete("/volumes/vt").status_code == 204
            settled(c)
    finally:
        fast.stop()
    print(f"\nagent down past remote_call_timeout (5 s) mid create: 503 {gave_up:.1f}s after the kill, volume error; "
          f"the re-delivered create {again['state']} (too late)")
