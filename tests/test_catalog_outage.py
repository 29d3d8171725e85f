"""PostgreSQL goes away and comes back under a running API replica and a running host agent.

A private PostgreSQL cluster of this module (scripts/postgres.sh: the session one is shared with
other tests, so it is never stopped) is stopped for a few seconds: every API request answers 503
within a second (``catalog_unavailable``; Cinder paths ``serviceUnavailable``), nothing hangs and
the server logs no traceback; the agent logs its failed heartbeats and keeps retrying. PostgreSQL
starts again on the same port: the same server process answers again and the agent's heartbeat
lands, without a restart of either. About 40 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import storage
from storage.catalog.failures import unavailable
from storage.errors import BackendError, CatalogUnavailable
from tests.api_server import STORAGECTL, ApiServer, make_tokens
from tests.fixtures_postgres import SCRIPT

PROJECT = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("sqlstate,expected", [
    (None, True), ("08006", True), ("08001", True), ("57P01", True), ("57P03", True),
    ("28P01", False), ("53300", False), ("42P01", False), ("40001", False),
])
def test_which_failures_mean_unavailable(sqlstate: str | None, expected: bool) -> None:
    assert unavailable(sqlstate) is expected


@pytest.fixture(scope="module")
def private_pg() -> Iterator[tuple[Path, int]]:
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="storage-pg-outage-", dir=shm if shm.is_dir() else None))
    out = subprocess.run([str(SCRIPT), "start", "--dir", str(base), "--fast", "--json"],
                         capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {out.stderr[-2000:]}")
    try:
        yield base, int(json.loads(out.stdout)["port"])
    finally:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(base), "--purge"], check=False, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _pg(action: str, base: Path, port: int) -> None:
    args = [str(SCRIPT), action, "--dir", str(base)] + (["--port", str(port), "--fast"] if action == "start" else [])
    subprocess.run(args, capture_output=True, timeout=120, check=True)


def _timed(client: httpx.Client, method: str, path: str, **kw) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    r = client.request(method, path, **kw)
    return r, time.monotonic() - start


def test_api_and_agent_ride_out_a_postgres_outage(private_pg: tuple[Path, int], tmp_path: Path) -> None:
    base, port = private_pg
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = data_dir / "storage.toml"
    config.write_text(f'data_dir = "{data_dir}"\nhost_name = "outage-host"\n[catalog]\nurl = "{url}"\n'
                      '[cluster]\nheartbeat_interval = 1\nservice_down_time = 4\n')
    server = ApiServer(config)
    server.tokens = make_tokens(config)
    agent_log = tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    agent = subprocess.Popen([STORAGECTL, "-c", str(config), "agent"], stdout=agent_log.open("wb"),
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server.start()
    try:
        with server.client("operator") as http:
            assert http.post("/volumes", json={"name": "before", "size": "1M"}).status_code == 201
            assert http.get(f"/v3/{PROJECT}/volumes").status_code == 200
            _wait(lambda: "registered" in agent_log.read_text(), 30, "the agent never registered")

            _pg("stop", base, port)
            t_down = time.monotonic()
            time.sleep(2.5)  # past the server's token cache (2 s): every request needs the catalog
            answers = []
            for _ in range(3):
                answers.append(("GET /volumes", *_timed(http, "GET", "/volumes")))
                answers.append(("GET cinder", *_timed(http, "GET", f"/v3/{PROJECT}/volumes/detail")))
                answers.append(("POST keyed", *_timed(http, "POST", "/volumes", json={"name": f"during-{uuid.uuid4().hex[:8]}", "size": "1M"},
                                                      headers={"Idempotency-Key": str(uuid.uuid4())})))
                answers.append(("healthcheck", *_timed(http, "GET", "/healthcheck")))
            time.sleep(max(0.0, 5.0 - (time.monotonic() - t_down)))  # the agent misses a few heartbeats
            _pg("start", base, port)
            t_up = time.monotonic()
            recovered = _wait(lambda: http.get("/volumes").status_code == 200, 30, "the API did not answer again")
            heartbeat = _wait(lambda: "succeeded again" in agent_log.read_text(), 30, "the agent's heartbeat did not resume")
            # the host was down (no heartbeat for service_down_time) until the agent's heartbeat landed
            created = http.post("/volumes", json={"name": "after", "size": "1M"}, headers={"Idempotency-Key": "after-1"})

        slowest = max(seconds for _, _, seconds in answers)
        print(f"\npostgres outage: {len(answers)} requests while it was down, statuses "
              f"{sorted({r.status_code for _, r, _ in answers})}, slowest {slowest:.3f}s; API answered again "
              f"{recovered:.2f}s and the agent heartbeat {heartbeat:.2f}s after PostgreSQL started "
              f"({time.monotonic() - t_up:.2f}s in all)")
        for what, r, seconds in answers:
            assert r.status_code == 503, f"{what}: {r.status_code} {r.text}"
            assert seconds < 1.0, f"{what} took {seconds:.2f}s"
            if what == "GET cinder":
                assert r.json()["serviceUnavailable"]["code"] == 503
            elif what != "healthcheck":
                assert r.json()["error"]["code"] == "catalog_unavailable", r.text
                assert "unavailable" in r.json()["error"]["message"]
            else:
                assert r.json()["catalog"] in ("unreachable", "timeout")
        assert created.status_code == 201, created.text
        assert agent.poll() is None, "the agent exited during the outage"
        log = agent_log.read_text()
        assert "failed (1 in a row)" in log and "Traceback" not in log, log[-3000:]
        server_log = server.log.read_text() if server.log else ""
        assert "Traceback" not in server_log, server_log[-3000:]
        with storage.open(config) as st:
            assert {v.name for v in st.volumes.list()} == {"before", "after"}
            (row,) = [h for h in st.hosts.list() if h.name == "outage-host"]
            assert row.state == "up", row
    finally:
        server.stop()
        agent.terminate()
        agent.wait(30)


def test_cli_names_the_unavailable_catalog(private_pg: tuple[Path, int], tmp_path: Path) -> None:
    """A command while PostgreSQL is down: exit 5, one line, no traceback (the type is CatalogUnavailable)."""
    base, port = private_pg
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    _pg("stop", base, port)
    try:
        with pytest.raises(CatalogUnavailable, match="is unavailable"):
            storage.open(None, data_dir=str(tmp_path), catalog={"url": url})
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
        out = subprocess.run([STORAGECTL, "volume", "list"], capture_output=True, text=True, timeout=60, check=False,
                             env={**env, "STORAGE_DATA_DIR": str(tmp_path), "STORAGE_CATALOG__URL": url})
        assert out.returncode == BackendError.exit_code and "Traceback" not in out.stderr, out.stderr
        assert "unavailable" in out.stderr
        # draining a replica must work exactly then: it needs the settings, not the catalog
        config = tmp_path / "storage.toml"
        config.write_text(f'data_dir = "{tmp_path}"\n[catalog]\nurl = "{url}"\n')
        out = subprocess.run([STORAGECTL, "-c", str(config), "serve", "--drain", "--json"], capture_output=True,
                             text=True, timeout=60, check=False, env=env)
        assert out.returncode == 0 and (tmp_path / "api.drain").exists(), out.stdout + out.stderr
    finally:
        _pg("start", base, port)


def _wait(check, timeout: float, message: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(message)
        time.sleep(0.1)


