"""Object stores over HTTP on a real server: containers, objects, streaming in bounded memory."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import httpx

from tests.api_server import ApiServer, api_server, shared_api_server  # noqa: F401 - fixtures

MiB = 1024 * 1024


def test_containers_and_objects(shared_api_server: ApiServer) -> None:
    base = "/object-stores/local/containers"
    with shared_api_server.client("operator") as c:
        assert "local" in [s["name"] for s in c.get("/object-stores").json()]
        r = c.put(f"{base}/photos", json={"metadata": {"owner": "ops"}})
        assert r.status_code == 201 and r.json()["name"] == "photos"
        assert "photos" in [x["name"] for x in c.get(base).json()]
        assert [x["name"] for x in c.get(base, params={"prefix": "pho"}).json()] == ["photos"]
        body = os.urandom(100_000)
        r = c.put(f"{base}/photos/objects/2026/a.bin", content=body,
                  headers={"Content-Type": "application/x-test", "X-Object-Meta-Camera": "x100"})
        assert r.status_code == 201, r.text
        assert r.json()["etag"] == hashlib.md5(body).hexdigest() and r.json()["size"] == len(body)
        assert c.put(f"{base}/photos/objects/2026/b.bin", content=b"bee").status_code == 201
        assert c.put(f"{base}/photos/objects/top.txt", content=b"top").status_code == 201

        names = [o["name"] for o in c.get(f"{base}/photos/objects").json()]
        assert names == ["2026/a.bin", "2026/b.bin", "top.txt"]
        listing = c.get(f"{base}/photos/objects", params={"delimiter": "/"}).json()
        assert [o["subdir"] or o["name"] for o in listing] == ["2026/", "top.txt"]
        assert [o["name"] for o in c.get(f"{base}/photos/objects", params={"prefix": "2026/", "marker": "2026/a.bin"}).json()] == ["2026/b.bin"]

        r = c.get(f"{base}/photos/objects/2026/a.bin")
        assert r.status_code == 200 and r.content == body
        assert r.headers["content-type"] == "application/x-test" and r.headers["x-object-meta-camera"] == "x100"
        r = c.head(f"{base}/photos/objects/2026/a.bin")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(body)
        assert r.headers["etag"].strip('"') == hashlib.md5(body).hexdigest()

        stat = c.get(f"{base}/photos").json()
        assert stat["object_count"] == 3 and stat["bytes_used"] == len(body) + 6
        r = c.delete(f"{base}/photos")
        assert r.status_code == 409
        for name in ("2026/a.bin", "2026/b.bin", "top.txt"):
            assert c.delete(f"{base}/photos/objects/{name}").status_code == 204
        r = c.get(f"{base}/photos/objects/top.txt")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert c.delete(f"{base}/photos").status_code == 204
        assert c.get("/object-stores/nope/containers").status_code == 404
    with shared_api_server.client("reader") as c:
        assert c.put(f"{base}/nope").status_code == 403
        assert c.put(f"{base}/x/objects/y", content=b"1").status_code == 403


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing for pid {pid}")


def test_streaming_upload_and_download_in_bounded_memory(api_server: ApiServer) -> None:
    """A 192 MiB object goes up and down while the server's RSS grows by far less than that."""
    size, block = 192 * MiB, MiB
    pid = api_server.proc.pid  # type: ignore[union-attr]
    base = f"{api_server.url}/object-stores/local/containers/big"
    headers = {"Authorization": f"Bearer {api_server.tokens['operator']}"}
    seed = os.urandom(block)

    def body():
        for i in range(size // block):
            yield seed[i % 7:] + seed[: i % 7]

    expected = hashlib.md5()
    for chunk in body():
        expected.update(chunk)
    with httpx.Client(timeout=120, headers=headers) as c:
        assert c.put(base).status_code == 201
        c.get(f"{base}/objects")  # warm up the route before the baseline
        baseline = rss_kib(pid)
        peak = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            r = c.put(f"{base}/objects/blob", content=body())
            assert r.status_code == 201, r.text
            assert r.json()["size"] == size and r.json()["etag"] == expected.hexdigest()
            got = hashlib.md5()
            n = 0
            with c.stream("GET", f"{base}/objects/blob") as resp:
                assert resp.status_code == 200 and int(resp.headers["content-length"]) == size
                for chunk in resp.iter_bytes():
                    got.update(chunk)
                    n += len(chunk)
            assert n == size and got.hexdigest() == expected.hexdigest()
        finally:
            stop.set()
            sampler.join()
        growth_mib = (peak[0] - baseline) / 1024
        print(f"server RSS growth during {size // MiB} MiB upload+download: {growth_mib:.1f} MiB")
        assert growth_mib < 32, f"server RSS grew by {growth_mib:.1f} MiB for a {size // MiB} MiB object"
        assert c.delete(f"{base}/objects/blob").status_code == 204
