"""Real processes: `storagectl agent` heartbeats into a catalog, the API server (tests/api_server.py)
and `storagectl` see the host up, down after kill -9 (503 naming the host), up after a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api_server import STORAGECTL, ApiServer, make_tokens, write_config

DOWN_TIME = 1.5  # service_down_time of these tests (seconds); heartbeat every 0.2 s
CLUSTER = f'host_name = "h1"\n[cluster]\nheartbeat_interval = 0.2\nservice_down_time = {DOWN_TIME}\n'


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}


class AgentProc:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.log = config.parent / "agent.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "AgentProc":
        self.proc = subprocess.Popen([STORAGECTL, "-c", str(self.config), "agent"], stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 15) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.stop()


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """storagectl in this process (a CLI start costs seconds on a loaded 2-core machine)."""
    from storage.cli.main import main

    def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        rc = main(["-c", str(config), *args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out.out, out.err)

    return run


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout}s")


def host_state(server: ApiServer, name: str = "h1") -> str | None:
    with server.client("reader") as c:
        r = c.get(f"/hosts/{name}")
    return r.json()["state"] if r.status_code == 200 else None


def test_agent_up_killed_down_503_restarted_up(tmp_path: Path, agents: list[AgentProc], ctl) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path / "data", CLUSTER)
    server = ApiServer(config)
    server.tokens = make_tokens(config)
    agent = AgentProc(config).start()
    agents.append(agent)
    server.start()
    try:
        wait_for("h1 up", lambda: host_state(server) == "up")
        with server.client() as c:
            r = c.post("/volumes", json={"name": "v1", "size": "8M"})
            assert r.status_code == 201, r.text
            assert r.json()["host"] == "h1"
            listed = c.get("/hosts").json()
            assert [(h["name"], h["state"], h["volumes"]) for h in listed] == [("h1", "up", 1)]
            assert listed[0]["pools"]["default"]["driver"] == "file"

        agent.signal(signal.SIGKILL)
        agent.wait()
        took = wait_for("h1 down", lambda: host_state(server) == "down")
        assert took <= DOWN_TIME + 2, took
        with server.client() as c:
            start = time.monotonic()
            r = c.post("/volumes/v1/extend", json={"size": "16M"})
            assert r.status_code == 503, r.text
            assert time.monotonic() - start < 5  # an answer, not a hang
            err = r.json()["error"]
            assert err["code"] == "host_unavailable" and "'h1'" in err["message"] and "down" in err["message"]
            assert err["details"] == {"host": "h1", "state": "down"}
            r = c.post(f"/v3/volumes/{c.get('/volumes/v1').json()['id']}/action", json={"os-extend": {"new_size": 1}})
            assert r.status_code == 503 and "'h1'" in r.json()["serviceUnavailable"]["message"], r.text
            shown = c.get("/volumes/v1")
            assert shown.status_code == 200 and shown.json()["host_state"] == "down"
            assert c.get("/volumes").status_code == 200
            assert c.delete("/volumes/v1").status_code == 503
            assert c.post("/volumes", json={"name": "v2", "size": "8M"}).status_code == 503
        r = ctl(config, "volume", "extend", "v1", "16M", "--json")
        assert r.returncode == 12, r.stderr
        assert json.loads(r.stdout)["error"]["details"]["host"] == "h1"
        r = ctl(config, "hosts", "list", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)[0]["state"] == "down"

        agents.append(agent := AgentProc(config).start())
        wait_for("h1 up again", lambda: host_state(server) == "up")
        with server.client() as c:
            r = c.post("/volumes/v1/extend", json={"size": "16M"})
            assert r.status_code == 200 and r.json()["size_bytes"] == 16 << 20

        agent.signal(signal.SIGTERM)
        assert agent.wait(10) == 0
        log = agent.log.read_text()
        assert "Traceback" not in log and "stopping" in log
    finally:
        server.stop()


def test_disable_enable_round_trip_admin_only(tmp_path: Path, agents: list[AgentProc], ctl) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path / "data", CLUSTER)
    r = ctl(config, "agent", "--once", "--json")  # registers once, like a first heartbeat
    assert r.returncode == 0 and json.loads(r.stdout) == {"host": "h1", "registered": True}, r.stderr
    agents.append(AgentProc(config).start())
    server = ApiServer(config)
    server.tokens = make_tokens(config)
    server.start()
    try:
        with server.client("operator") as c:
            assert c.post("/hosts/h1/disable", json={"reason": "x"}).status_code == 403
        with server.client() as c:
            r = c.post("/hosts/h1/disable", json={"reason": "disk swap"})
            assert r.status_code == 200 and r.json()["state"] == "disabled" and r.json()["disabled_reason"] == "disk swap"
            r = c.post("/volumes", json={"name": "v1", "size": "8M"})
            assert r.status_code == 503 and "disabled (disk swap)" in r.json()["error"]["message"]
            assert [(p["pool"], p["disabled"]) for p in c.get("/hosts/candidates").json()] == [("default", True)]
            assert c.post("/hosts/h1/disable", json={"reason": "x" * 256}).status_code == 422
            assert c.post("/hosts/nope/enable").status_code == 404
            assert c.get("/hosts/bad%20name").status_code == 422
        r = ctl(config, "hosts", "enable", "h1", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["state"] == "up", r.stderr
        with server.client() as c:
            assert c.post("/volumes", json={"name": "v1", "size": "8M"}).status_code == 201
            assert [(p["host"], p["pool"], p["up"], p["disabled"]) for p in c.get("/hosts/candidates").json()] == [("h1", "default", True, False)]
        r = ctl(config, "hosts", "disable", "h1", "--reason", "again", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["disabled"] is True
        r = ctl(config, "hosts", "show", "h1")
        assert r.returncode == 0 and "again" in r.stdout
    finally:
        server.stop()


def test_agent_survives_catalog_outage(tmp_path: Path, agents: list[AgentProc], ctl) -> None:  # type: ignore[no-untyped-def]
    """The catalog cannot be opened (its directory is a file): one line per failure, no exit, no
    traceback; once it can, the agent registers without a restart."""
    data = tmp_path / "data"
    blocker = tmp_path / "catalogdir"
    blocker.write_text("not a directory")
    config = write_config(data)
    config.write_text(f'data_dir = "{data}"\nhost_name = "h1"\n[catalog]\nurl = "sqlite:///{blocker}/catalog.db"\n'
                      f'[cluster]\nheartbeat_interval = 0.2\nservice_down_time = {DOWN_TIME}\n')
    r = ctl(config, "agent", "--once")
    assert r.returncode == 5 and "heartbeat of host 'h1' failed" in r.stderr and "Traceback" not in r.stderr
    agent = AgentProc(config).start()
    agents.append(agent)
    wait_for("three failures logged", lambda: agent.log.read_text().count("failed (") >= 3)
    assert agent.proc is not None and agent.proc.poll() is None
    blocker.unlink()
    blocker.mkdir()
    wait_for("recovery logged", lambda: "succeeded again" in agent.log.read_text())
    r = ctl(config, "hosts", "show", "h1", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "up", r.stderr
    agent.signal(signal.SIGTERM)
    assert agent.wait(10) == 0
    log = agent.log.read_text()
    assert "Traceback" not in log
    failures = [line for line in log.splitlines() if "failed (" in line]
    # one line each (an ECS JSON object: stderr is not a terminal), its message bounded
    assert failures and all(len(json.loads(line)["message"]) < 600 for line in failures)
    assert all(json.loads(line)["event.action"] == "host.heartbeat" for line in failures)
