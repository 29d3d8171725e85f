"""HEAD wherever GET exists, and a correct Allow header on 405, over every route of a real server."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# the Cinder subset is not in the OpenAPI document: (concrete path, what it serves)
CINDER = {
    "/v3/p/volumes": {"GET", "POST"},
    "/v3/volumes/x": {"GET", "PUT", "DELETE"},
    "/v3/p/volumes/x/action": {"POST"},
    "/v3/snapshots": {"GET", "POST"},
    "/v3/p/backups/x/restore": {"POST"},
    "/v3/p/limits": {"GET"},
}


def _templates(spec: dict) -> dict[str, tuple[re.Pattern[str], set[str]]]:
    return {path: (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), {m.upper() for m in ops})
            for path, ops in spec["paths"].items()}


def _served(templates: dict[str, tuple[re.Pattern[str], set[str]]], url: str) -> tuple[set[str], set[str]]:
    """(methods any route serves at url, methods of the most specific template: the resource's)."""
    matching = [(path.count("{"), methods) for path, (pattern, methods) in templates.items() if pattern.match(url)]
    fewest = min(n for n, _ in matching)
    anywhere = set().union(*(m for _, m in matching))
    return anywhere, set().union(*(m for n, m in matching if n == fewest))


def _allow(served: set[str]) -> list[str]:
    return sorted(served | ({"HEAD"} if "GET" in served else set()))


def test_405_names_every_method_of_the_path(shared_api_server: ApiServer) -> None:
    spec = httpx.get(shared_api_server.url + "/openapi.json").json()
    templates = _templates(spec)
    urls = {re.sub(r"\{[^}]+\}", "x", path) for path in spec["paths"]}
    checked = 0
    with shared_api_server.client("admin") as c:
        for url in sorted(urls):
            anywhere, served = _served(templates, url)
            for method in METHODS:
                if method in anywhere:
                    continue
                r = c.request(method, url)
                assert r.status_code == 405, (method, url, r.status_code, r.text[:200])
                assert [m.strip() for m in r.headers["allow"].split(",")] == _allow(served), (method, url, r.headers["allow"])
                assert r.json()["error"]["code"] == "method_not_allowed"
                checked += 1
        for url, served in CINDER.items():
            r = c.request("PATCH", url)
            assert r.status_code == 405 and "badMethod" in r.json(), (url, r.text)
            assert [m.strip() for m in r.headers["allow"].split(",")] == _allow(served), (url, r.headers["allow"])
    assert checked >= 60


# Bodies that change between two requests (counters, heartbeat ages, free bytes): same status, no body.
LIVE = frozenset({"/metrics", "/hosts", "/hosts/candidates"})


def test_head_wherever_get(shared_api_server: ApiServer) -> None:
    spec = httpx.get(shared_api_server.url + "/openapi.json").json()
    with shared_api_server.client("admin") as c:
        assert c.post("/volumes", json={"name": "head-v", "size": "1M"}).status_code == 201
        checked = 0
        for path, ops in spec["paths"].items():
            if "get" not in ops:
                continue
            url = re.sub(r"\{[^}]+\}", "x", path).replace("/volumes/x", "/volumes/head-v")
            get = c.get(url)
            head = c.head(url)
            assert head.status_code == get.status_code, (url, head.status_code, get.status_code)
            assert head.content == b"", url
            if get.status_code == 200 and "content-length" in get.headers and url not in LIVE:
                assert head.headers["content-length"] == get.headers["content-length"], url
            checked += 1
        for url in CINDER:
            if "GET" in CINDER[url]:
                assert c.head(url).status_code == c.get(url).status_code, url
    assert checked >= 20


@pytest.mark.parametrize("role", ["reader", None])
def test_head_needs_the_same_token_as_get(shared_api_server: ApiServer, role: str | None) -> None:
    with shared_api_server.client(role) as c:
        assert c.head("/volumes").status_code == (200 if role else 401)
        assert c.head("/healthz").status_code == 200


def _table():
    from fastapi import Depends

    from api.deps import require_admin
    from api.methods import RouteTable

    class Dep:  # a dependant shaped like FastAPI's: .call and .dependencies
        def __init__(self, call, deps=()):
            self.call, self.dependencies = call, list(deps)

    table = RouteTable()
    table.add("/volumes", {"GET"})
    table.add("/volumes", {"POST"})
    table.add("/volumes/{ref}", {"GET", "PATCH", "DELETE"})
    table.add("/backups/gc", {"POST"})
    table.add("/backups/{backup_id}", {"GET", "DELETE"})
    table.add("/tokens", {"POST"}, Dep(None, [Dep(Depends), Dep(None, [Dep(require_admin)])]))
    table.add("/objects/{name:path}", {"HEAD"})
    return table


@pytest.mark.parametrize("method,path,role", [
    ("GET", "/volumes", "reader"), ("POST", "/volumes", "operator"), ("DELETE", "/volumes/x", "operator"),
    ("POST", "/tokens", "admin"), ("GET", "/tokens", "reader"), ("TRACE", "/volumes", "reader"),
    ("PUT", "/nowhere", "reader"), ("HEAD", "/volumes", "reader"), ("POST", "/backups/gc", "operator"),
])
def test_required_role(method: str, path: str, role: str) -> None:
    assert _table().required_role(method, path) == role


@pytest.mark.parametrize("path,allowed", [
    ("/volumes", ["GET", "HEAD", "POST"]), ("/volumes/x", ["DELETE", "GET", "HEAD", "PATCH"]),
    ("/backups/gc", ["POST"]), ("/backups/b1", ["DELETE", "GET", "HEAD"]), ("/objects/a/b", ["HEAD"]), ("/nowhere", []),
])
def test_allowed(path: str, allowed: list[str]) -> None:
    assert _table().allowed(path) == allowed


def test_unknown_method_is_405_for_a_reader(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("reader") as c:
        r = c.request("TRACE", "/healthz")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", r.text
        assert c.request("PUT", "/no/such/route").status_code == 404
    assert httpx.request("TRACE", shared_api_server.url + "/healthz").status_code == 401


def test_route_table_remembers_matches_and_forgets_them_on_add() -> None:
    from api.methods import MATCH_CACHE, MATCH_CACHE_PATH, RouteTable

    table = RouteTable()
    table.add("/volumes", {"GET", "POST"})
    table.add("/volumes/{volume_id}", {"GET", "DELETE"})
    assert table.allowed("/volumes/v1") == ["DELETE", "GET", "HEAD"] and table.required_role("DELETE", "/volumes/v1") == "operator"
    assert "/volumes/v1" in table._matched
    table.add("/volumes/{volume_id}/extend", {"POST"})
    assert table._matched == {}  # a new route: every remembered match is recomputed
    assert table.allowed("/volumes/v1/extend") == ["POST"]
    long_path = "/volumes/" + "x" * MATCH_CACHE_PATH
    assert table.allowed(long_path) == ["DELETE", "GET", "HEAD"] and long_path not in table._matched
    for i in range(MATCH_CACHE + 5):  # bounded: forgotten at once past MATCH_CACHE paths
        table.declares("GET", f"/volumes/{i}")
    assert len(table._matched) <= MATCH_CACHE
