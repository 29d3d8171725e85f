"""Backups and jobs through the native API on a real server: progress, cancel, restart."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

import storage
from tests.api_server import ApiServer, api_server, shared_api_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.both_catalogs

MiB = 1024 * 1024


def fill_volume(config: Path, name: str, data: bytes, offset: int = 0) -> None:
    """Write bytes into a file-backend volume through the backend's own open_volume (no loop device)."""
    with storage.open(config) as st:
        vol = st.volumes.get(name)
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, data, offset)
                os.fsync(fd)
            finally:
                os.close(fd)


def read_volume(config: Path, name: str, length: int) -> bytes:
    with storage.open(config) as st:
        vol = st.volumes.get(name)
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path, open(path, "rb") as fh:
            return fh.read(length)


def wait_job(c: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still active after {timeout}s")


def wait_progress(c: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["state"] == "running" and job["bytes_done"] > 0:
            return job
        assert job["state"] in ("queued", "running"), job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} made no progress in {timeout}s")


def test_backup_restore_verify_delete(shared_api_server: ApiServer) -> None:
    data = os.urandom(3 * MiB)
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "bk", "size": "8M"}).status_code == 201
        fill_volume(shared_api_server.config, "bk", data, offset=MiB)
        r = c.post("/backups", json={"volume": "bk", "name": "bk-1", "labels": {"tier": "gold"}})
        assert r.status_code == 202, r.text
        job = r.json()
        backup_id = job["params"]["backup_id"]
        assert job["kind"] == "backup" and r.headers["location"] == f"/backups/{backup_id}"
        done = wait_job(c, job["id"])
        assert done["state"] == "succeeded", done["error"]
        assert done["result"]["id"] == backup_id and done["bytes_total"] == 8 * MiB and done["percent"] == 100.0

        backup = c.get(f"/backups/{backup_id}").json()
        assert backup["status"] == "available" and backup["volume_name"] == "bk" and backup["size_bytes"] == 8 * MiB
        assert [b["id"] for b in c.get("/backups", params={"volume": "bk"}).json()] == [backup_id]
        assert c.get("/backups", params={"label": "tier=silver"}).json() == []

        r = c.post(f"/backups/{backup_id}/verify", json={"deep": True})
        assert r.status_code == 202
        verified = wait_job(c, r.json()["id"])
        assert verified["state"] == "succeeded" and verified["result"]["ok"] is True, verified

        r = c.post(f"/backups/{backup_id}/restore", json={"new_volume_name": "bk-restored"})
        assert r.status_code == 202
        restored = wait_job(c, r.json()["id"])
        assert restored["state"] == "succeeded", restored
        assert read_volume(shared_api_server.config, "bk-restored", 4 * MiB) == bytes(MiB) + data

        r = c.post(f"/backups/{backup_id}/restore", json={"to_volume": "bk-restored", "new_volume_name": "x"})
        assert r.status_code == 422 and "exactly one" in r.json()["error"]["message"]
        assert c.delete(f"/backups/{backup_id}").status_code == 204
        assert c.get(f"/backups/{backup_id}").status_code == 404
        r = c.post("/backups/gc", json={"dry_run": True})
        assert r.status_code == 202 and wait_job(c, r.json()["id"])["state"] == "succeeded"


def test_backup_bad_input(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        r = c.post("/backups", json={})
        assert r.status_code == 422 and "volume or snapshot" in r.json()["error"]["message"]
        r = c.post("/backups", json={"volume": "missing"})
        assert r.status_code == 404
        assert c.post("/volumes", json={"name": "bk-bad", "size": "1M"}).status_code == 201
        r = c.post("/backups", json={"volume": "bk-bad", "repository": "file:///etc"})
        assert r.status_code == 422 and "repository" in r.json()["error"]["message"]
    with shared_api_server.client("reader") as c:
        assert c.post("/backups", json={"volume": "bk-bad"}).status_code == 403


def test_job_progress_and_cancel(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "slow", "size": "32M"}).status_code == 201
        fill_volume(shared_api_server.config, "slow", os.urandom(24 * MiB))
        r = c.post("/backups", json={"volume": "slow", "bandwidth_limit": "2M"})
        assert r.status_code == 202
        job_id = r.json()["id"]
        running = wait_progress(c, job_id)
        assert 0 < running["bytes_done"] < running["bytes_total"] == 32 * MiB
        assert running["rate_bytes_per_s"] and running["percent"] < 100
        with shared_api_server.client("reader") as rc:
            assert rc.post(f"/jobs/{job_id}/cancel").status_code == 403
        r = c.post(f"/jobs/{job_id}/cancel")
        assert r.status_code == 202 and r.json()["cancel_requested"] is True
        final = wait_job(c, job_id, timeout=30)
        assert final["state"] == "cancelled" and final["error"]["code"] == "cancelled", final
        assert c.post(f"/jobs/{job_id}/cancel").status_code == 409
        backup = c.get(f"/backups/{final['params']['backup_id']}").json()
        assert backup["status"] != "available"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_restart_while_job_runs(api_server: ApiServer, how: int) -> None:
    with api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "rs", "size": "16M"}).status_code == 201
        fill_volume(api_server.config, "rs", os.urandom(16 * MiB))
        job_id = c.post("/backups", json={"volume": "rs", "bandwidth_limit": "1M"}).json()["id"]
        wait_progress(c, job_id)
    api_server.stop(sig=how)
    api_server.start()
    with api_server.client("reader") as c:
        job = c.get(f"/jobs/{job_id}").json()
        assert job["state"] == "interrupted", job
        assert job["message"] and job["finished_at"]
        assert job_id in [j["id"] for j in c.get("/jobs", params={"state": "interrupted"}).json()]
        assert 'storage_jobs{state="interrupted"} 1' in c.get("/metrics").text
