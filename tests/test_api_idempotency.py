"""Idempotency-Key on POST (api/idempotency.py) against a real ``storagectl serve``."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api_server import ApiServer, _serve, shared_api_server, write_config  # noqa: F401 - fixture

PROJECT = "0123456789abcdef0123456789abcdef"
# the shared server's catalog follows the kind: SQLite, then PostgreSQL (the expiry server stays on SQLite)
pytestmark = pytest.mark.both_catalogs


def cinder_volumes(c: httpx.Client) -> list[dict]:
    return c.get(f"/v3/{PROJECT}/volumes").json()["volumes"]


def test_retry_with_the_same_key_returns_the_first_answer_and_creates_nothing(shared_api_server: ApiServer) -> None:
    key = str(uuid.uuid4())
    with shared_api_server.client("operator") as c:
        first = c.post("/volumes", json={"name": "idem-1", "size": "8M"}, headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text
        assert "idempotent-replayed" not in first.headers
        again = c.post("/volumes", json={"name": "idem-1", "size": "8M"}, headers={"Idempotency-Key": key})
        assert again.status_code == 201 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["content-type"] == first.headers["content-type"]
        # without the key the same body is a new request: the name is taken
        assert c.post("/volumes", json={"name": "idem-1", "size": "8M"}).status_code == 409
        assert [v["id"] for v in c.get("/volumes", params={"name": "idem-1"}).json()] == [first.json()["id"]]


def test_same_key_with_another_body_is_refused_naming_the_key(shared_api_server: ApiServer) -> None:
    key = "retry-" + uuid.uuid4().hex
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "idem-2", "size": "8M"}, headers={"Idempotency-Key": key}).status_code == 201
        r = c.post("/volumes", json={"name": "idem-2b", "size": "8M"}, headers={"Idempotency-Key": key})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "idempotency_key_reused" and key in err["message"]
        assert c.get("/volumes/idem-2b").status_code == 404
        # another token may use the same key for its own request
    with shared_api_server.client("admin") as c:
        r = c.post("/volumes", json={"name": "idem-2c", "size": "8M"}, headers={"Idempotency-Key": key})
        assert r.status_code == 201 and "idempotent-replayed" not in r.headers


@pytest.mark.parametrize("key,why", [("a" * 256, "256"), ("caf\u00e9", "printable ASCII")])
def test_bad_keys_are_refused(shared_api_server: ApiServer, key: str, why: str) -> None:
    with shared_api_server.client("operator") as c:
        r = c.post("/volumes", json={"name": "idem-bad", "size": "8M"}, headers={"Idempotency-Key": key.encode("utf-8")})
        assert r.status_code == 422 and why in r.json()["error"]["message"], r.text
        assert c.get("/volumes/idem-bad").status_code == 404


def test_token_create_refuses_a_key(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("admin") as c:
        before = len(c.get("/tokens").json())
        r = c.post("/tokens", json={"role": "reader"}, headers={"Idempotency-Key": "tok-1"})
        assert r.status_code == 422 and "secret" in r.json()["error"]["message"]
        assert len(c.get("/tokens").json()) == before


def test_twenty_concurrent_cinder_creates_with_one_key_make_one_volume(shared_api_server: ApiServer) -> None:
    key = str(uuid.uuid4())
    body = {"volume": {"size": 1}}  # no name: Cinder generates one, so every create without a key is a new volume
    with shared_api_server.client("operator") as c:
        before = {v["id"] for v in cinder_volumes(c)}

        def create(_: int) -> httpx.Response:
            with shared_api_server.client("operator") as own:
                return own.post(f"/v3/{PROJECT}/volumes", json=body, headers={"Idempotency-Key": key})

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(create, range(20)))
        assert [r.status_code for r in answers] == [202] * 20, [r.text for r in answers if r.status_code != 202]
        ids = {r.json()["volume"]["id"] for r in answers}
        assert len(ids) == 1
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 19
        new = {v["id"] for v in cinder_volumes(c)} - before
        assert new == ids
        print(f"\n20 concurrent POSTs with one Idempotency-Key: {len(new)} volume created, 19 replayed")


def test_cinderclient_create_with_a_key_header(shared_api_server: ApiServer) -> None:
    from cinderclient import client as cinder_client
    from keystoneauth1 import session as ks_session
    from keystoneauth1 import token_endpoint

    endpoint = f"{shared_api_server.url}/v3/{PROJECT}"
    sess = ks_session.Session(auth=token_endpoint.Token(endpoint, shared_api_server.tokens["operator"]),
                              additional_headers={"Idempotency-Key": str(uuid.uuid4())})
    cc = cinder_client.Client("3.40", session=sess, os_endpoint=endpoint)
    before = len(cc.volumes.list())
    first = cc.volumes.create(size=1)
    second = cc.volumes.create(size=1)
    assert second.id == first.id and len(cc.volumes.list()) == before + 1


@pytest.fixture(scope="module")
def short_ttl_server(tmp_path_factory: pytest.TempPathFactory):
    config = write_config(tmp_path_factory.mktemp("api-ttl") / "data", "[api]\nidempotency_key_seconds = 2\n")
    yield from _serve(config)


def test_keys_expire(short_ttl_server: ApiServer) -> None:
    key = str(uuid.uuid4())
    with short_ttl_server.client("operator") as c:
        before = len(cinder_volumes(c))
        send = lambda: c.post(f"/v3/{PROJECT}/volumes", json={"volume": {"size": 1}}, headers={"Idempotency-Key": key})  # noqa: E731
        first = send().json()["volume"]["id"]
        assert send().json()["volume"]["id"] == first
        time.sleep(2.5)
        r = send()
        assert r.status_code == 202 and r.json()["volume"]["id"] != first and "idempotent-replayed" not in r.headers
        assert len(cinder_volumes(c)) == before + 2


def test_backup_job_replay_keeps_location_and_starts_one_job(shared_api_server: ApiServer) -> None:
    key = str(uuid.uuid4())
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "idem-bk", "size": "4M"}).status_code == 201
        jobs_before = len(c.get("/jobs", params={"kind": "backup"}).json())
        first = c.post("/backups", json={"volume": "idem-bk"}, headers={"Idempotency-Key": key})
        assert first.status_code == 202, first.text
        again = c.post("/backups", json={"volume": "idem-bk"}, headers={"Idempotency-Key": key})
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
        assert again.headers.get("location") == first.headers.get("location") is not None
        assert len(c.get("/jobs", params={"kind": "backup"}).json()) == jobs_before + 1


def _dead_attempt(server: ApiServer, key: str, path: str, body: bytes, made: str) -> None:
    """The pending claim a replica killed mid-request leaves: lease lapsed, the thing it made noted."""
    from datetime import timedelta

    import storage
    from storage.catalog import idempotency as keys
    from storage.catalog.api_tables import IdempotencyKey
    from storage.catalog.base import utcnow

    with storage.open(server.config) as st, st.catalog.session() as s:
        s.add(IdempotencyKey(token_id=server.tokens["operator"].split(".")[0], key=key,
                             fingerprint=keys.fingerprint("POST", path, "", body), method="POST", path=path,
                             state="pending", created_at=utcnow() - timedelta(seconds=30),
                             expires_at=utcnow() - timedelta(seconds=1), body=f"made:{made}"))


def test_a_retry_over_a_dead_attempt_answers_the_volume_it_made(shared_api_server: ApiServer) -> None:
    """A replica died after the volume's row and before the answer: the retry answers that volume
    (an unnamed create would otherwise make a second one); a noted volume gone since is made anew."""
    path = f"/v3/{PROJECT}/volumes"
    body = b'{"volume": {"size": 1}}'
    headers = {"Content-Type": "application/json"}
    with shared_api_server.client("operator") as c:
        made = c.post(path, content=body, headers=headers).json()["volume"]
        before = {v["id"] for v in cinder_volumes(c)}
        key = str(uuid.uuid4())
        _dead_attempt(shared_api_server, key, path, body, f"volume:{made['id']}")
        r = c.post(path, content=body, headers={**headers, "Idempotency-Key": key})
        assert r.status_code == 202 and r.json()["volume"]["id"] == made["id"], r.text
        assert {v["id"] for v in cinder_volumes(c)} == before
        assert c.post(path, content=body, headers={**headers, "Idempotency-Key": key}).json()["volume"]["id"] == made["id"]

        gone = str(uuid.uuid4())
        _dead_attempt(shared_api_server, gone, path, body, f"volume:{uuid.uuid4()}")
        r = c.post(path, content=body, headers={**headers, "Idempotency-Key": gone})
        assert r.status_code == 202 and r.json()["volume"]["id"] not in before, r.text
        assert len(cinder_volumes(c)) == len(before) + 1


def test_a_retry_over_a_dead_attempt_answers_the_snapshot_it_made(shared_api_server: ApiServer) -> None:
    path = f"/v3/{PROJECT}/snapshots"
    headers = {"Content-Type": "application/json"}
    with shared_api_server.client("operator") as c:
        vol = c.post(f"/v3/{PROJECT}/volumes", json={"volume": {"size": 1}}).json()["volume"]
        body = ('{"snapshot": {"volume_id": "%s"}}' % vol["id"]).encode()
        made = c.post(path, content=body, headers=headers).json()["snapshot"]
        key = str(uuid.uuid4())
        _dead_attempt(shared_api_server, key, path, body, f"snapshot:{made['id']}")
        r = c.post(path, content=body, headers={**headers, "Idempotency-Key": key})
        assert r.status_code == 202 and r.json()["snapshot"]["id"] == made["id"], r.text
        snaps = [s for s in c.get(f"{path}").json()["snapshots"] if s["volume_id"] == vol["id"]]
        assert [s["id"] for s in snaps] == [made["id"]]
