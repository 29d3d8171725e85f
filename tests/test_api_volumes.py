"""Volumes, snapshots and pools through the native API on a real server (file backend)."""

from __future__ import annotations

import time

import pytest

from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

pytestmark = pytest.mark.both_catalogs

MiB = 1024 * 1024


def wait_job(c, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still active after {timeout}s")


def test_pools(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("reader") as c:
        pools = c.get("/pools").json()
        assert [p["name"] for p in pools] == ["default"] and pools[0]["driver"] == "file"
        assert pools[0]["total_bytes"] > 0 and pools[0]["error"] is None
        assert c.get("/pools/default").json()["name"] == "default"
        r = c.get("/pools/nope")
        assert r.status_code == 404 and "default" in r.json()["error"]["message"]


def test_volume_lifecycle(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        r = c.post("/volumes", json={"name": "v1", "size": "8M", "labels": {"app": "db"}})
        assert r.status_code == 201, r.text
        vol = r.json()
        assert vol["size_bytes"] == 8 * MiB and vol["status"] == "available" and vol["labels"] == {"app": "db"}
        assert c.get(f"/volumes/{vol['id']}").json()["name"] == "v1"
        assert c.get("/volumes/v1").json()["id"] == vol["id"]
        assert [v["name"] for v in c.get("/volumes", params={"label": "app=db"}).json()] == ["v1"]
        assert c.get("/volumes", params={"label": "app=web"}).json() == []
        assert [v["name"] for v in c.get("/volumes", params={"status": "available"}).json()] == ["v1"]

        assert c.post("/volumes/v1/extend", json={"size": "16M"}).json()["size_bytes"] == 16 * MiB
        r = c.post("/volumes/v1/extend", json={"size": "4M"})
        assert r.status_code == 422 and "shrinking" in r.json()["error"]["message"]

        assert c.patch("/volumes/v1", json={"name": "v1b", "labels": {"app": "web"}}).json()["name"] == "v1b"

        r = c.post("/snapshots", json={"volume": "v1b", "name": "s1"})
        assert r.status_code == 201, r.text
        snap = r.json()
        assert snap["volume_id"] == vol["id"] and snap["size_bytes"] == 16 * MiB
        assert [s["name"] for s in c.get("/snapshots", params={"volume": "v1b"}).json()] == ["s1"]
        assert c.get("/snapshots/s1").json()["id"] == snap["id"]
        assert c.patch("/snapshots/s1", json={"labels": {"k": "v"}}).json()["labels"] == {"k": "v"}

        clone = c.post("/volumes/v1b/clone", json={"name": "v1c"})
        assert clone.status_code == 201 and clone.json()["source_volume_id"] == vol["id"]
        from_snap = c.post("/volumes", json={"name": "v1s", "source_snapshot": "s1"})
        assert from_snap.status_code == 201 and from_snap.json()["source_snapshot_id"] == snap["id"]
        assert c.post("/volumes/v1b/revert", json={"snapshot": "s1"}).json()["status"] == "available"

        r = c.delete("/volumes/v1b")
        assert r.status_code == 409 and "snapshot" in r.json()["error"]["message"]
        assert c.delete("/snapshots/s1").status_code == 204
        assert c.get("/snapshots/s1").status_code == 404
        for name in ("v1b", "v1c", "v1s"):
            assert c.delete(f"/volumes/{name}").status_code == 204
        assert c.get("/volumes/v1b").status_code == 404


def test_volume_bad_input(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        for body, field in (
            ({"name": "bad/name", "size": "1M"}, "name"),
            ({"name": "x", "size": "0"}, "size"),
            ({"name": "x", "size": "ten gigs"}, "size"),
            ({"name": "x"}, "size"),
        ):
            r = c.post("/volumes", json=body)
            assert r.status_code == 422, (body, r.text)
            assert "accepted" in r.json()["error"]["message"], r.text
        r = c.post("/volumes", json={"size": "1M"})
        assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "name"
        assert c.post("/volumes", json={"name": "dup", "size": "1M"}).status_code == 201
        r = c.post("/volumes", json={"name": "dup", "size": "1M"})
        assert r.status_code == 409 and "dup" in r.json()["error"]["message"]
        assert c.get("/volumes", params={"status": "sleepy"}).status_code == 422
        assert c.get("/volumes", params={"label": "no-equals"}).status_code == 422
        assert c.delete("/volumes/dup").status_code == 204


def test_reader_cannot_change_and_reset_status_is_admin_only(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "rs", "size": "1M"}).status_code == 201
    with shared_api_server.client("reader") as c:
        assert c.get("/volumes/rs").status_code == 200
        assert c.post("/volumes", json={"name": "r2", "size": "1M"}).status_code == 403
        assert c.delete("/volumes/rs").status_code == 403
        assert c.post("/volumes/rs/extend", json={"size": "2M"}).status_code == 403
    with shared_api_server.client("operator") as c:
        r = c.post("/volumes/rs/reset-status", json={"status": "error"})
        assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    with shared_api_server.client("admin") as c:
        assert c.post("/volumes/rs/reset-status", json={"status": "error"}).json()["status"] == "error"
        assert c.post("/volumes/rs/reset-status", json={"status": "available"}).json()["status"] == "available"
        assert c.delete("/volumes/rs").status_code == 204


def test_delete_with_wipe_runs_as_job(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "wiped", "size": "32M"}).status_code == 201
        r = c.delete("/volumes/wiped", params={"wipe": "zero"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["kind"] == "wipe" and job["state"] in ("queued", "running") and job["bytes_total"] == 32 * MiB
        done = wait_job(c, job["id"])
        assert done["state"] == "succeeded", done
        assert done["bytes_done"] == 32 * MiB and done["created_by"] == "operator:test-operator"
        assert c.get("/volumes/wiped").status_code == 404
        assert done["id"] in [j["id"] for j in c.get("/jobs", params={"kind": "wipe"}).json()]


@pytest.mark.loop
def test_attach_detach(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "att", "size": "4M"}).status_code == 201
        r = c.post("/volumes/att/attach")
        assert r.status_code == 200, r.text
        dev = r.json()["attached_device"]
        try:
            assert dev.startswith("/dev/loop") and r.json()["status"] == "in-use"
            r = c.delete("/volumes/att")
            assert r.status_code == 409 and "attached" in r.json()["error"]["message"]
        finally:
            assert c.post("/volumes/att/detach").json()["status"] == "available"
        assert c.delete("/volumes/att").status_code == 204


def test_host_devices(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("reader") as c:
        r = c.get("/host/devices")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["lsblk"]["available"] is True and "blockdevices" in report["lsblk"]["data"]
    assert report["losetup"]["tool"] == "losetup"
    assert report["lvm_available"] or "not installed" in report["lvm_message"]


def test_metrics_cover_volumes_pools_backups(shared_api_server: ApiServer) -> None:
    from tests.test_api_http import sample

    with shared_api_server.client("operator") as c:
        before = sample(c.get("/metrics").text, 'storage_volumes{status="available"}')
        assert c.post("/volumes", json={"name": "metered", "size": "1M"}).status_code == 201
        text = c.get("/metrics").text
        assert sample(text, 'storage_volumes{status="available"}') == before + 1
        assert sample(text, 'storage_pool_total_bytes{pool="default"}') > 0
        for area in ("volume", "pool", "backup", "job"):
            assert f'storage_collector_up{{area="{area}"}} 1' in text
        assert c.delete("/volumes/metered").status_code == 204
