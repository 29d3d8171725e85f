"""`storagectl serve --workers N`: uvicorn worker processes sharing one catalog. A write through
one worker is seen by a listing from any worker (each keeps its own listing cache, kept fresh by
the catalog's change counter), and every worker gives the same ETag for the same listing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.api_server import ApiServer, detach_loops_under, make_tokens


def worker_pids(parent: int) -> set[int]:
    """Processes whose parent is the uvicorn supervisor (its worker processes)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.add(int(stat.parent.name))
    return pids


def fresh_get(server: ApiServer, path: str, **headers: str) -> httpx.Response:
    """One request on a connection of its own, so the kernel may hand it to any worker."""
    auth = {"Authorization": f"Bearer {server.tokens['reader']}", "Connection": "close", **headers}
    return httpx.get(server.url + path, headers=auth, timeout=30)


def test_serve_with_two_workers_shares_the_catalog(config_file: Path) -> None:
    """Up to ~75 s on a loaded 2-core machine (two workers each import the whole API)."""
    server = ApiServer(config_file)
    server.tokens = make_tokens(config_file)
    server.start("--workers", "2", timeout=90)
    try:
        assert server.proc is not None
        deadline = time.monotonic() + 60
        while len(worker_pids(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = worker_pids(server.proc.pid)
        assert len(workers) >= 2, f"uvicorn started {len(workers)} worker(s)"
        for _ in range(8):  # fill the listing cache of every worker with the empty listing
            assert fresh_get(server, "/volumes").json() == []
        with server.client("operator") as client:
            created = client.post("/volumes", json={"name": "shared", "size": "1M"})
            assert created.status_code == 201, created.text
        etags = set()
        for _ in range(12):
            r = fresh_get(server, "/volumes")
            assert r.status_code == 200 and [v["name"] for v in r.json()] == ["shared"], r.text
            etags.add(r.headers["etag"])
        assert len(etags) == 1, etags
        for _ in range(8):
            assert fresh_get(server, "/volumes", **{"If-None-Match": r.headers["etag"]}).status_code == 304
        assert worker_pids(server.proc.pid) == workers  # no worker died or was replaced
    finally:
        server.stop()
        detach_loops_under(config_file.parent)
