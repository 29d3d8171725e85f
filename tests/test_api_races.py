"""Races on unique names answer 409, never 500: the catalog maps IntegrityError to Conflict once.

50 parallel same-name creates, clones, renames and policy creates against a real ``storagectl
serve``: exactly one success, the rest 409, no 5xx. ``conflict_for`` is table-tested below.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import text

import storage
from storage.catalog.conflicts import conflict_for, constraint_of
from storage.errors import Conflict
from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

pytestmark = pytest.mark.both_catalogs

N = 50


@pytest.mark.parametrize("message,where", [
    ("UNIQUE constraint failed: volumes.name", ("volumes", "name")),
    ("(sqlite3.IntegrityError) UNIQUE constraint failed: policies.name\n[SQL: INSERT ...]", ("policies", "name")),
    ("UNIQUE constraint failed: volume_attachments.volume_id", ("volume_attachments", "volume_id")),
    ('duplicate key value violates unique constraint "uq_volumes_name"\nDETAIL:  Key (name)=(v1) already exists.',
     ("volumes", "name")),
    ('duplicate key value violates unique constraint "uq_volume_attachments_volume_id"', ("volume_attachments", "volume_id")),
    ('duplicate key value violates unique constraint "uq_exports_target_iqn"', ("exports", "target_iqn")),
    ("FOREIGN KEY constraint failed", None),
    ("NOT NULL constraint failed: volumes.size_bytes", None),
])
def test_constraint_of(message: str, where: tuple[str, str] | None) -> None:
    assert constraint_of(message) == where


@pytest.mark.parametrize("message,words", [
    ("UNIQUE constraint failed: volumes.name", "volume with this name exists"),
    ("UNIQUE constraint failed: snapshots.name", "snapshot with this name exists"),
    ("UNIQUE constraint failed: policies.name", "policy with this name exists"),
    ("UNIQUE constraint failed: exports.volume_id", "exported already"),
    ("UNIQUE constraint failed: jobs.id", "jobs row with this id exists"),
    ("insert or update on table \"snapshots\" violates foreign key constraint", "changed or deleted concurrently"),
    ("something else entirely 'secret-value'", "conflicts with a concurrent change"),
])
def test_conflict_for(message: str, words: str) -> None:
    exc = conflict_for(message)
    assert isinstance(exc, Conflict) and exc.http_status == 409 and exc.exit_code == 4
    assert words in exc.message
    assert "secret-value" not in exc.message and "v1" not in exc.message


def test_catalog_session_raises_conflict_not_integrity_error(st: storage.Storage) -> None:
    st.volumes.create("dup", "1M")
    with pytest.raises(Conflict, match="volume with this name exists"):
        with st.catalog.session() as s:  # past the service's own check, as a racing writer would be
            s.execute(text("INSERT INTO volumes (id, name, size_bytes, pool, status, labels, created_at, updated_at) "
                           "VALUES ('x', 'dup', 1, 'default', 'available', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    assert [v.name for v in st.volumes.list()] == ["dup"]


def _parallel(server: ApiServer, calls: list[tuple[str, str, Any]]) -> Counter[int]:
    """Fire the calls together (one client each) and count the statuses."""
    def one(call: tuple[str, str, Any]) -> int:
        method, path, body = call
        with server.client("operator") as c:
            return c.request(method, path, json=body).status_code

    with ThreadPoolExecutor(max_workers=N) as pool:
        return Counter(pool.map(one, calls))


def _one_winner(statuses: Counter[int], success: int) -> None:
    assert statuses == Counter({success: 1, 409: N - 1}), statuses


def test_parallel_same_name_creates(shared_api_server: ApiServer) -> None:
    statuses = _parallel(shared_api_server, [("POST", "/volumes", {"name": "race-create", "size": "1M"})] * N)
    _one_winner(statuses, 201)
    with shared_api_server.client("reader") as c:
        assert [v["name"] for v in c.get("/volumes").json() if v["name"].startswith("race-create")] == ["race-create"]


def test_parallel_same_name_clones(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "race-src", "size": "1M"}).status_code == 201
    statuses = _parallel(shared_api_server, [("POST", "/volumes/race-src/clone", {"name": "race-clone"})] * N)
    _one_winner(statuses, 201)
    with shared_api_server.client("reader") as c:
        assert c.get("/volumes/race-src").json()["status"] == "available"
        assert c.get("/volumes/race-clone").json()["status"] == "available"


def test_parallel_renames_to_one_name(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        for i in range(N):
            assert c.post("/volumes", json={"name": f"race-r{i}", "size": "1M"}).status_code == 201
    statuses = _parallel(shared_api_server, [("PATCH", f"/volumes/race-r{i}", {"name": "race-renamed"}) for i in range(N)])
    _one_winner(statuses, 200)
    with shared_api_server.client("reader") as c:
        names = {v["name"] for v in c.get("/volumes").json()}
    assert "race-renamed" in names and len({n for n in names if n.startswith("race-r")}) == N


def test_parallel_same_name_policy_creates(shared_api_server: ApiServer) -> None:
    spec = {"name": "race-policy", "kind": "snapshot", "schedule": "0 * * * *",
            "selector": {"labels": {"tier": "x"}}, "retention": {"keep_last": 2}}
    statuses = _parallel(shared_api_server, [("POST", "/policies", spec)] * N)
    _one_winner(statuses, 201)
    with shared_api_server.client("reader") as c:
        assert [p["name"] for p in c.get("/policies").json()].count("race-policy") == 1


def test_parallel_snapshot_creates(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "race-snapvol", "size": "1M"}).status_code == 201
    statuses = _parallel(shared_api_server, [("POST", "/snapshots", {"volume": "race-snapvol", "name": "race-snap"})] * N)
    assert statuses[201] == 1 and statuses[201] + statuses[409] == N, statuses
    assert httpx.get(shared_api_server.url + "/healthz").status_code == 200
