"""Policies over HTTP on a real server: CRUD, run now as a job, history."""

from __future__ import annotations

import time

import pytest

from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

pytestmark = pytest.mark.both_catalogs


def wait_job(c, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still active")


def test_policy_crud_run_history(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "pv", "size": "4M"}).status_code == 201
        spec = {"name": "hourly", "kind": "snapshot", "schedule": "0 * * * *",
                "selector": {"volumes": ["pv"]}, "retention": {"keep_last": 2}}
        r = c.post("/policies", json=spec)
        assert r.status_code == 201, r.text
        policy = r.json()
        assert policy["kind"] == "snapshot" and policy["enabled"] is True
        assert c.post("/policies", json=spec).status_code == 409
        assert [p["name"] for p in c.get("/policies").json()] == ["hourly"]
        assert c.get("/policies/hourly").json()["id"] == policy["id"]
        r = c.patch("/policies/hourly", json={"schedule": "30 2 * * *", "enabled": False})
        assert r.status_code == 200 and r.json()["schedule"] == "30 2 * * *" and r.json()["enabled"] is False

        for _ in range(3):
            r = c.post("/policies/hourly/run", json={})
            assert r.status_code == 202 and r.json()["kind"] == "policy-run"
            job = wait_job(c, r.json()["id"])
            assert job["state"] == "succeeded", job["error"]
        history = c.get("/policies/hourly/history").json()
        assert len(history) == 3 and {h["status"] for h in history} == {"succeeded"}
        snaps = c.get("/snapshots", params={"volume": "pv"}).json()
        assert 1 <= len(snaps) <= 2  # made by the runs; keep_last 2 bounds them

        r = c.post("/policies", json={**spec, "name": "bad", "schedule": "every fortnight-ish"})
        assert r.status_code == 422 and "schedule" in r.json()["error"]["message"]
        r = c.post("/policies", json={**spec, "name": "bad2", "retention": {"keep_last": -1}})
        assert r.status_code == 422 and "keep_last" in r.json()["error"]["message"]
        r = c.post("/policies", json={**spec, "name": "bad3", "kind": "backup", "backup": {"repository": "file:///etc"}})
        assert r.status_code == 422 and "repository" in r.json()["error"]["message"]
    with shared_api_server.client("reader") as c:
        assert c.get("/policies/hourly/history").status_code == 200
        assert c.post("/policies/hourly/run", json={}).status_code == 403
        assert c.delete("/policies/hourly").status_code == 403
    with shared_api_server.client("operator") as c:
        assert c.delete("/policies/hourly").status_code == 204
        assert c.get("/policies/hourly").status_code == 404
