"""The API's edge (api/edge.py): the token is checked before the body is read, and bodies are bounded.

Against a real ``storagectl serve``; the memory test reads the server process's peak RSS (VmHWM).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers

from api.edge import bearer_of, body_limit, is_public
from storage.config import ApiConfig
from tests.api_server import ApiServer, _serve, write_config

MiB = 1024 * 1024
API = ApiConfig(max_body_bytes=64 * 1024, max_object_bytes=256 * 1024)


@pytest.mark.parametrize("method,path,public", [
    ("GET", "/healthz", True), ("HEAD", "/healthz", True), ("POST", "/healthz", False),
    ("GET", "/healthcheck", True), ("HEAD", "/healthcheck", True), ("POST", "/healthcheck", False),
    ("GET", "/", True), ("GET", "/v3", True), ("GET", "/v3/", True), ("GET", "/openapi.json", True),
    ("GET", "/docs", True), ("GET", "/volumes", False), ("GET", "/v3/volumes", False),
    ("GET", "/healthz/", False), ("POST", "/", False), ("GET", "/tokens", False),
])
def test_is_public(method: str, path: str, public: bool) -> None:
    assert is_public(method, path) is public


@pytest.mark.parametrize("method,path,limit", [
    ("POST", "/volumes", 64 * 1024),
    ("PUT", "/object-stores/local/containers/c/objects/a/b", 256 * 1024),
    ("POST", "/object-stores/local/containers/c/objects/a", 64 * 1024),
    ("PUT", "/object-stores/local/containers/c", 64 * 1024),
    ("PUT", "/object-stores/local/containers/c/objects/", 64 * 1024),
])
def test_body_limit(method: str, path: str, limit: int) -> None:
    assert body_limit(method, path, API) == limit


@pytest.mark.parametrize("headers,token", [
    ({}, None), ({"authorization": "Bearer abc"}, "abc"), ({"authorization": "bearer  abc "}, "abc"),
    ({"authorization": "Basic abc"}, None), ({"authorization": "Bearer "}, None), ({"x-auth-token": "t"}, "t"),
    ({"authorization": "Basic x", "x-auth-token": "t"}, "t"),
])
def test_bearer_of(headers: dict[str, str], token: str | None) -> None:
    assert bearer_of(Headers(headers)) == token


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    config = write_config(tmp_path_factory.mktemp("edge") / "data", '[api]\nmax_body_bytes = "64K"\nmax_object_bytes = "256K"\n')
    yield from _serve(config)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def _raw_post(port: int, path: str, size: int, headers: str = "") -> bytes:
    """POST ``size`` bytes with a raw socket (the server may answer and close before it has them all)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {size}\r\n{headers}\r\n".encode())
        block = b"[" * MiB
        sent = 0
        try:
            while sent < size:
                sock.sendall(block[: min(MiB, size - sent)])
                sent += MiB
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the body was read: the point of the test
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def test_anonymous_50mb_post_is_401_without_reading_it(small_limits: ApiServer) -> None:
    assert small_limits.proc is not None
    pid = small_limits.proc.pid
    for _ in range(3):  # warm the routes so later growth is the body's alone
        httpx.post(small_limits.url + "/volumes", content=b"{", headers={"Content-Type": "application/json"})
    before = _peak_rss_kib(pid)
    answer = _raw_post(small_limits.port, "/volumes", 50 * MiB)
    after = _peak_rss_kib(pid)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"unauthenticated"' in answer
    assert after - before < 4 * 1024, f"peak RSS grew by {after - before} KiB for an anonymous 50 MB body"


def test_malformed_json_without_token_is_401(small_limits: ApiServer) -> None:
    for path in ("/volumes", "/policies", "/backups", "/tokens", "/v3/p/volumes"):
        r = httpx.post(small_limits.url + path, content=b'{"name": ', headers={"Content-Type": "application/json"})
        assert r.status_code == 401, (path, r.text)


def test_reader_post_is_403_before_the_body(small_limits: ApiServer) -> None:
    with small_limits.client("reader") as c:
        r = c.post("/volumes", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text


def test_admin_routes_refuse_operators_before_the_body(small_limits: ApiServer) -> None:
    with small_limits.client("operator") as c:
        r = c.post("/tokens", content=b'{"role": ', headers={"Content-Type": "application/json"})
        assert r.status_code == 403 and "'admin'" in r.json()["error"]["message"], r.text
        r = c.post("/volumes/x/reset-status", content=b"{", headers={"Content-Type": "application/json"})
        assert r.status_code == 403 and "'admin'" in r.json()["error"]["message"], r.text


def test_authenticated_too_large_is_413(small_limits: ApiServer) -> None:
    token = small_limits.tokens["admin"]
    answer = _raw_post(small_limits.port, "/volumes", 50 * MiB, f"Authorization: Bearer {token}\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"too_large"' in answer and b"65536" in answer


def test_chunked_body_over_the_limit_is_413(small_limits: ApiServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 4096

    with small_limits.client("admin") as c:
        r = c.post("/volumes", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"


def test_body_within_the_limit_still_works(small_limits: ApiServer) -> None:
    with small_limits.client("admin") as c:
        padded = b'{"name": "edge-ok", "size": "1M"}' + b" " * 60000  # near the 64 KiB limit, still valid JSON
        r = c.post("/volumes", content=padded, headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text[:300]
        assert c.delete("/volumes/edge-ok").status_code == 204


def test_object_upload_has_its_own_limit(small_limits: ApiServer) -> None:
    base = "/object-stores/local/containers/edge"
    with small_limits.client("admin") as c:
        assert c.put(base).status_code == 201
        ok = c.put(base + "/objects/fits", content=b"x" * (200 * 1024))  # over max_body_bytes, under max_object_bytes
        assert ok.status_code == 201, ok.text
        big = c.put(base + "/objects/big", content=b"x" * (300 * 1024))
        assert big.status_code == 413, big.text

        def chunks() -> Iterator[bytes]:
            for _ in range(100):
                yield b"y" * 4096

        streamed = c.put(base + "/objects/streamed", content=chunks())
        assert streamed.status_code == 413, streamed.text
        assert c.head(base + "/objects/streamed").status_code == 404
        names = [o["name"] for o in c.get(base + "/objects").json()]
        assert names == ["fits"]


def test_concurrent_anonymous_bodies_do_not_pile_up(small_limits: ApiServer) -> None:
    assert small_limits.proc is not None
    before = _peak_rss_kib(small_limits.proc.pid)
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(_raw_post(small_limits.port, "/backups", 20 * MiB))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 5 and all(a.startswith(b"HTTP/1.1 401") for a in answers), [a[:40] for a in answers]
    assert _peak_rss_kib(small_limits.proc.pid) - before < 8 * 1024
