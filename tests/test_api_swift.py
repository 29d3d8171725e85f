"""The API against the real Swift all-in-one: objects streamed through the swift store, a backup into Swift."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_server import ApiServer, make_tokens
from tests.test_api_backups import fill_volume, wait_job

pytestmark = pytest.mark.swift
MiB = 1024 * 1024


@pytest.fixture
def swift_api(objects_config: Path) -> Iterator[ApiServer]:
    server = ApiServer(objects_config)
    server.tokens = make_tokens(objects_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_objects_through_swift(swift_api: ApiServer) -> None:
    container = f"api-{int(time.time() * 1000)}"
    base = f"/object-stores/swift/containers/{container}"
    body = os.urandom(24 * MiB + 123)  # above the store's segment size: stored as a large object
    with swift_api.client("operator") as c:
        stores = {s["name"]: s for s in c.get("/object-stores").json()}
        assert stores["swift"]["type"] == "swift" and stores["swift"]["options"]["key"] == "***"
        assert c.put(base).status_code == 201
        r = c.put(f"{base}/objects/dir/blob.bin", content=body, headers={"X-Object-Meta-Origin": "api"})
        assert r.status_code == 201, r.text
        assert r.json()["size"] == len(body)
        r = c.get(f"{base}/objects/dir/blob.bin")
        assert r.status_code == 200 and hashlib.sha256(r.content).digest() == hashlib.sha256(body).digest()
        assert r.headers["x-object-meta-origin"] == "api"
        assert [o["name"] for o in c.get(f"{base}/objects", params={"prefix": "dir/"}).json()] == ["dir/blob.bin"]
        assert c.delete(f"{base}/objects/dir/blob.bin").status_code == 204
        assert c.delete(f"{base}/objects/dir/blob.bin").status_code == 404
        assert c.delete(base).status_code == 204


def test_backup_into_swift_repository(swift_api: ApiServer) -> None:
    container = f"bk-{int(time.time() * 1000)}"
    with swift_api.client("operator") as c:
        assert c.put(f"/object-stores/swift/containers/{container}").status_code == 201
        assert c.post("/volumes", json={"name": "sw", "size": "8M"}).status_code == 201
        fill_volume(swift_api.config, "sw", os.urandom(2 * MiB))
        r = c.post("/backups", json={"volume": "sw", "repository": f"swift://{container}"})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["id"])
        assert job["state"] == "succeeded", job["error"]
        backup = c.get(f"/backups/{job['params']['backup_id']}").json()
        assert backup["repository"].startswith("swift://") and backup["status"] == "available"
        objects = c.get(f"/object-stores/swift/containers/{container}/objects").json()
        assert any(o["name"] and "manifest" in o["name"] for o in objects), [o["name"] for o in objects][:10]
