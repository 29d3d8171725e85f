"""The admin API over HTTP against a real uvicorn server: auth, errors, jobs, tokens, metrics."""

from __future__ import annotations

import httpx
import pytest

from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

pytestmark = pytest.mark.both_catalogs

BOGUS = "00000000-0000-0000-0000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def test_healthz_needs_no_token(shared_api_server: ApiServer) -> None:
    r = httpx.get(shared_api_server.url + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "catalog": "ok"}


@pytest.mark.parametrize("path", ["/jobs", "/tokens", "/metrics"])
def test_missing_or_bad_token_is_401(shared_api_server: ApiServer, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer " + BOGUS}, {"Authorization": "Bearer nonsense"}, {"X-Auth-Token": BOGUS}):
        r = httpx.get(shared_api_server.url + path, headers=headers)
        assert r.status_code == 401, (path, headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthenticated"


# (method, path, body, minimum role); every route that changes something needs operator or admin
MATRIX = [
    ("GET", "/jobs", None, "reader"),
    ("GET", "/metrics", None, "reader"),
    ("GET", "/tokens", None, "admin"),
    ("POST", "/tokens", {"role": "reader", "name": "m"}, "admin"),
]
RANK = {"reader": 0, "operator": 1, "admin": 2}


@pytest.mark.parametrize("method,path,body,needed", MATRIX)
def test_auth_matrix(shared_api_server: ApiServer, method: str, path: str, body: dict | None, needed: str) -> None:
    for role in ("reader", "operator", "admin"):
        with shared_api_server.client(role) as c:
            r = c.request(method, path, json=body)
        if RANK[role] >= RANK[needed]:
            assert r.status_code < 400, (role, method, path, r.text)
        else:
            assert r.status_code == 403, (role, method, path, r.text)
            assert r.json()["error"]["code"] == "forbidden" and needed in r.json()["error"]["message"]


def test_x_auth_token_header_is_accepted(shared_api_server: ApiServer) -> None:
    r = httpx.get(shared_api_server.url + "/jobs", headers={"X-Auth-Token": shared_api_server.tokens["reader"]})
    assert r.status_code == 200


def test_token_admin_over_http(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("admin") as c:
        r = c.post("/tokens", json={"role": "reader", "name": "tmp", "expires_in_seconds": 3600})
        assert r.status_code == 201
        created = r.json()
        secret = created["secret"]
        token_id = created["token"]["id"]
        assert httpx.get(shared_api_server.url + "/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        listed = c.get("/tokens").json()
        assert token_id in [t["id"] for t in listed]
        assert secret.split(".", 1)[1] not in c.get("/tokens").text
        assert c.delete(f"/tokens/{token_id}").json()["revoked_at"]
        assert httpx.get(shared_api_server.url + "/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
        r = c.delete("/tokens/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_validation_errors_name_the_field(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("admin") as c:
        r = c.post("/tokens", json={"role": "root"})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "invalid_input" and "role" in err["message"] and "'reader'" in err["message"]
        assert err["details"]["fields"][0]["field"] == "role"
        r = c.get("/jobs", params={"limit": 0})
        assert r.status_code == 422 and "limit" in r.json()["error"]["message"] and "ge=1" in r.json()["error"]["message"]
        r = c.get("/jobs", params={"state": "sleeping"})
        assert r.status_code == 422 and "state" in r.json()["error"]["message"]


def test_unknown_job_is_404_in_the_one_error_shape(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("reader") as c:
        r = c.get("/jobs/does-not-exist")
    assert r.status_code == 404
    assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message", "details"}
    assert "does-not-exist" in r.json()["error"]["message"]


def sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_exposition(shared_api_server: ApiServer) -> None:
    requests = 'storage_api_requests_total{method="GET",route="/jobs",status="200"}'
    count = 'storage_api_request_duration_seconds_count{method="GET",route="/jobs"}'
    with shared_api_server.client("reader") as c:
        before = c.get("/metrics").text
        for _ in range(3):
            c.get("/jobs")
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert "# TYPE storage_jobs gauge" in text and 'storage_jobs{state="failed"}' in text
    assert sample(text, requests) == sample(before, requests) + 3
    assert sample(text, count) == sample(before, count) + 3
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))


def test_binds_to_loopback_by_default(shared_api_server: ApiServer) -> None:
    import subprocess

    out = subprocess.run(["ss", "-ltnH", f"sport = :{shared_api_server.port}"], capture_output=True, text=True, check=True).stdout
    local = [line.split()[3] for line in out.splitlines() if line.strip()]
    assert local == [f"127.0.0.1:{shared_api_server.port}"], out


def test_every_route_enforces_auth(shared_api_server: ApiServer) -> None:
    """From the published OpenAPI: no token -> 401 everywhere but /healthz and /healthcheck; a reader -> 403 on every change."""
    import re

    anon = httpx.Client(base_url=shared_api_server.url, timeout=60)  # a loaded CI box: not httpx's 5 s default
    spec = anon.get("/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", "x", path)
        for method in ops:
            if path in ("/healthz", "/healthcheck"):
                continue
            r = anon.request(method.upper(), url)
            assert r.status_code == 401, (method, path, r.status_code)
            if method in ("get", "head"):
                continue
            with shared_api_server.client("reader") as c:
                r = c.request(method.upper(), url, json={})
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            checked += 1
    assert checked >= 25
    # the Cinder subset (not in our OpenAPI) likewise
    cinder = [("POST", "/v3/p/volumes"), ("PUT", "/v3/p/volumes/x"), ("DELETE", "/v3/volumes/x"),
              ("POST", "/v3/volumes/x/action"), ("POST", "/v3/p/snapshots"), ("DELETE", "/v3/snapshots/x"),
              ("POST", "/v3/backups"), ("DELETE", "/v3/p/backups/x"), ("POST", "/v3/backups/x/restore")]
    for method, url in cinder:
        assert anon.request(method, url).status_code == 401, url
        r = anon.request(method, url, json={}, headers={"X-Auth-Token": shared_api_server.tokens["reader"]})
        assert r.status_code == 403 and r.json()["forbidden"]["code"] == 403, (url, r.text)
