"""GET /healthcheck (drain file, SIGUSR1/2, bounded catalog probe) and SIGTERM's graceful exit."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.routes.health import CatalogProbe, readiness
from storage.catalog.db import Catalog
from tests.api_server import STORAGECTL, ApiServer, api_server, shared_api_server  # noqa: F401 - fixtures


@pytest.mark.parametrize("draining,catalog,status,state", [
    (False, "ok", 200, "ok"),
    (True, "ok", 503, "draining"),
    (True, "skipped", 503, "draining"),
    (False, "unreachable", 503, "unhealthy"),
    (False, "timeout", 503, "unhealthy"),
])
def test_readiness(draining: bool, catalog: str, status: int, state: str) -> None:
    code, body = readiness(draining, catalog)
    assert (code, body["status"], body["draining"]) == (status, state, draining)


class _Storage:
    """Only the catalog: what CatalogProbe reads of a Storage."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog


def _probe(url: str, timeout: float) -> tuple[str, float]:
    catalog = Catalog(url, run_migrations=False)
    try:
        start = time.monotonic()
        result = asyncio.run(CatalogProbe(_Storage(catalog)).check(timeout))  # type: ignore[arg-type]
        return result, time.monotonic() - start
    finally:
        catalog.close()


def test_probe_answers_ok_on_sqlite(tmp_path: Path) -> None:
    assert _probe(f"sqlite:///{tmp_path / 'c.db'}", 1.0)[0] == "ok"


def test_probe_says_unreachable_when_the_database_refuses() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        result, took = _probe(f"postgresql+psycopg://storage@127.0.0.1:{port}/storage", 1.0)
    assert result == "unreachable" and took < 1.0


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A real TCP listener on 127.0.0.1 that accepts and never answers (a hung database)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_probe_never_hangs_on_a_silent_database(black_hole: int) -> None:
    result, took = _probe(f"postgresql+psycopg://storage@127.0.0.1:{black_hole}/storage", 0.5)
    assert result == "timeout" and 0.4 < took < 1.5, took


def _health(server: ApiServer, method: str = "GET") -> httpx.Response:
    return httpx.request(method, server.url + "/healthcheck", timeout=2)


def _until(server: ApiServer, status: int, within: float = 1.0) -> float:
    start = time.monotonic()
    while True:
        r = _health(server)
        took = time.monotonic() - start
        if r.status_code == status:
            return took
        assert took < within, f"/healthcheck still {r.status_code} {r.text} after {took:.2f}s, wanted {status}"
        time.sleep(0.05)


def test_healthcheck_drain_file_cli_and_signals(shared_api_server: ApiServer) -> None:
    server = shared_api_server
    r = _health(server)
    assert r.status_code == 200 and r.json() == {"status": "ok", "catalog": "ok", "draining": False}
    head = _health(server, "HEAD")
    assert head.status_code == 200 and head.content == b""

    drain = server.config.parent / "api.drain"  # the default api.drain_file
    drain.touch()
    took = _until(server, 503)
    assert _health(server).json()["status"] == "draining"
    assert _health(server, "HEAD").status_code == 503
    drain.unlink()
    _until(server, 200)

    run = lambda *a: subprocess.run([STORAGECTL, "-c", str(server.config), "serve", *a], capture_output=True, text=True, check=True)  # noqa: E731
    assert "draining" in run("--drain").stdout and drain.exists()
    _until(server, 503)
    run("--undrain")
    assert not drain.exists()
    _until(server, 200)

    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGUSR1)
    took_signal = _until(server, 503)
    os.kill(server.proc.pid, signal.SIGUSR2)
    _until(server, 200)
    print(f"\ndrain -> 503 within {took:.3f}s (file), {took_signal:.3f}s (SIGUSR1)")


def test_sigterm_finishes_the_request_in_flight_then_exits_0(api_server: ApiServer) -> None:
    """A POST whose body arrives over 1.5 s is in flight when SIGTERM comes: it completes 201; exit 0."""
    server = api_server
    assert server.proc is not None
    parts = [b'{"name": "slow", ', b'"size": "8M", ', b'"labels": {"k": "v"}}']
    signalled = threading.Event()

    def body() -> Iterator[bytes]:
        yield parts[0]
        time.sleep(0.5)
        os.killpg(server.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        signalled.set()
        for part in parts[1:]:
            time.sleep(0.5)
            yield part

    with server.client("operator") as c:
        r = c.post("/volumes", content=body(), headers={"Content-Type": "application/json"})
    assert signalled.is_set()
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "slow"
    # no new connections while it finishes, then exit 0
    code = server.proc.wait(20)
    server.proc = None
    assert code == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthcheck", timeout=1)
