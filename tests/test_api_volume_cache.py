"""The volume listing cache: counter bumped by every write, ETag/304, never stale (real server, real processes)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import storage
from api.listing_cache import ListingCache, etag_matches, is_fresh, make_listing
from storage.domain import VolumeStatus
from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

pytestmark = pytest.mark.both_catalogs

STORAGECTL = str(Path(sys.executable).parent / "storagectl")


# -- pure parts ----------------------------------------------------------------


def test_etag_matching_follows_if_none_match_rules() -> None:
    tag = make_listing(1, b"[]").etag
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34
    assert etag_matches(tag, tag) and etag_matches(f"W/{tag}", tag) and etag_matches(f'"x", {tag}', tag)
    assert etag_matches("*", tag)
    assert not etag_matches(None, tag) and not etag_matches("", tag) and not etag_matches('"x"', tag)
    assert make_listing(1, b"[1]").etag != tag and make_listing(7, b"[]").etag == tag  # the body decides


def test_freshness_needs_a_counter_at_least_as_new() -> None:
    assert is_fresh(make_listing(5, b""), 5) and is_fresh(make_listing(6, b""), 5)
    assert not is_fresh(make_listing(4, b""), 5)
    assert not is_fresh(make_listing(None, b""), None) and not is_fresh(make_listing(5, b""), None)


def test_cache_keeps_the_newest_and_is_bounded() -> None:
    cache = ListingCache(max_entries=2)
    cache.store("a", make_listing(3, b"new"))
    cache.store("a", make_listing(2, b"old"))  # a slower computation finishing later must not win
    assert cache.lookup("a", 3).body == b"new" and cache.lookup("a", 4) is None
    cache.store("b", make_listing(1, b"b"))
    cache.store("c", make_listing(1, b"c"))
    assert len(cache) == 2 and cache.lookup("a", 3) is None  # least recently used went
    cache.store("d", make_listing(None, b"d"))
    assert cache.lookup("d", None) is None  # no counter: never cached


def test_get_reads_the_counter_before_computing() -> None:
    cache = ListingCache()
    counter = {"v": 1}
    calls: list[int] = []

    def compute() -> bytes:
        calls.append(counter["v"])
        counter["v"] += 1  # a write lands while the listing is computed
        return b"%d" % len(calls)

    first = cache.get("k", lambda: counter["v"], compute)
    assert first.version == 1 and first.body == b"1"
    again = cache.get("k", lambda: counter["v"], compute)  # counter is now 2 > 1: recompute
    assert again.body == b"2" and calls == [1, 2]
    assert cache.get("k", lambda: 2, compute).body == b"2" and len(calls) == 2  # stored under 2: fresh for 2
    assert cache.get("k", lambda: counter["v"], compute).body == b"3" and len(calls) == 3  # 3 > 2: recompute


# -- the counter: every write path bumps it ------------------------------------


def test_every_volume_write_bumps_the_counter(st: storage.Storage) -> None:
    seen = [st.volumes.list_version()]
    assert seen[0] is not None

    def bumped(what: str) -> None:
        now = st.volumes.list_version()
        assert now is not None and now > seen[-1], f"{what} did not bump the volume counter ({seen[-1]} -> {now})"
        seen.append(now)

    st.volumes.create("c1", "4M", labels={"a": "1"})
    bumped("create")
    st.volumes.update("c1", labels={"a": "2"})
    bumped("update labels")
    st.volumes.extend("c1", "8M")
    bumped("extend")
    st.snapshots.create("c1", "s1")
    bumped("snapshot create (volume status moves)")
    st.volumes.attach("c1")
    bumped("attach")
    st.volumes.detach("c1")
    bumped("detach")
    st.volumes.clone("c1", "c2")
    bumped("clone")
    st.volumes.revert("c1", "s1")
    bumped("revert")
    st.volumes.reset_status("c2", VolumeStatus.ERROR)
    bumped("reset-status")
    st.volumes.delete("c2")
    bumped("delete")
    before = st.volumes.list_version()
    st.volumes.list()
    st.volumes.get("c1")
    assert st.volumes.list_version() == before  # reads do not count


def test_rolled_back_writes_do_not_count(st: storage.Storage) -> None:
    st.volumes.create("r1", "1M")
    before = st.volumes.list_version()
    with pytest.raises(Exception):
        st.volumes.create("r1", "1M")  # duplicate name: nothing written
    with pytest.raises(Exception):
        st.volumes.detach("r1")  # not attached: refused before any write
    assert st.volumes.list_version() == before


# -- through the real server ---------------------------------------------------


def _storagectl(server: ApiServer, *args: str) -> dict | list:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    out = subprocess.run([STORAGECTL, "-c", str(server.config), *args, "--json"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _names(resp: httpx.Response) -> dict[str, dict]:
    assert resp.status_code == 200, resp.text
    return {v["name"]: v for v in resp.json()}


def test_etag_and_304(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("reader") as r, shared_api_server.client("operator") as w:
        assert w.post("/volumes", json={"name": "e1", "size": "1M"}).status_code == 201
        first = r.get("/volumes")
        etag = first.headers["etag"]
        assert first.status_code == 200 and "e1" in _names(first) and first.headers["cache-control"] == "no-cache"
        second = r.get("/volumes")
        assert second.headers["etag"] == etag and second.content == first.content
        not_modified = r.get("/volumes", headers={"If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == etag
        assert r.get("/volumes", headers={"If-None-Match": f'"nope", W/{etag}'}).status_code == 304
        assert r.get("/volumes", headers={"If-None-Match": '"nope"'}).status_code == 200
        filtered = r.get("/volumes", params={"status": "in-use"})
        assert filtered.headers["etag"] != etag and "e1" not in _names(filtered)

        assert w.post("/volumes/e1/attach").status_code == 200
        changed = r.get("/volumes", headers={"If-None-Match": etag})  # the old tag no longer matches
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert _names(changed)["e1"]["status"] == "in-use" and _names(changed)["e1"]["attached_device"]
        assert "e1" in _names(r.get("/volumes", params={"status": "in-use"}))
        assert w.post("/volumes/e1/detach").status_code == 200
        assert _names(r.get("/volumes"))["e1"]["attached_device"] is None
        assert "e1" not in _names(r.get("/volumes", params={"status": "in-use"}))


def test_writes_through_the_api_are_seen_at_once(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("admin") as c:
        for i in range(5):
            name = f"api-{i}"
            assert c.post("/volumes", json={"name": name, "size": "1M", "labels": {"n": str(i)}}).status_code == 201
            assert name in _names(c.get("/volumes"))
            assert c.patch(f"/volumes/{name}", json={"labels": {"n": "x"}}).status_code == 200
            assert _names(c.get("/volumes"))[name]["labels"] == {"n": "x"}
            assert name in _names(c.get("/volumes", params={"label": "n=x"}))
            assert c.post(f"/volumes/{name}/reset-status", json={"status": "error"}).status_code == 200
            assert _names(c.get("/volumes"))[name]["status"] == "error"
            assert name in _names(c.get("/volumes", params={"status": "error"}))
            assert c.delete(f"/volumes/{name}").status_code == 204
            assert name not in _names(c.get("/volumes"))
            assert name not in _names(c.get("/volumes", params={"status": "error"}))


def _raw_write(config: Path, sql: str) -> None:
    """Run one statement on the catalog with the database's own driver, no SQLAlchemy, no service."""
    with storage.open(config) as other:
        url = other.catalog.engine.url
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as conn:
            conn.execute(sql)
        return
    import psycopg

    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as pg:
        pg.execute(sql)  # type: ignore[arg-type]  # the test's own literal


def test_writes_by_another_process_are_seen(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("reader") as r:
        etag = r.get("/volumes").headers["etag"]
        _storagectl(shared_api_server, "volume", "create", "cli-1", "2M")
        listing = r.get("/volumes", headers={"If-None-Match": etag})
        assert listing.status_code == 200 and "cli-1" in _names(listing)
        etag = listing.headers["etag"]

        _storagectl(shared_api_server, "volume", "reset-status", "cli-1", "error")
        assert _names(r.get("/volumes"))["cli-1"]["status"] == "error"
        assert "cli-1" in _names(r.get("/volumes", params={"status": "error"}))
        _storagectl(shared_api_server, "volume", "reset-status", "cli-1", "available")
        assert _names(r.get("/volumes"))["cli-1"]["status"] == "available"
        assert "cli-1" not in _names(r.get("/volumes", params={"status": "error"}))

        _storagectl(shared_api_server, "volume", "update", "cli-1", "--label", "team=ops")
        assert _names(r.get("/volumes"))["cli-1"]["labels"] == {"team": "ops"}

        # a writer that bypasses the service entirely (plain sqlite3 / psycopg): the triggers still count it
        _raw_write(shared_api_server.config, "UPDATE volumes SET size_bytes = size_bytes * 2 WHERE name = 'cli-1'")
        assert _names(r.get("/volumes"))["cli-1"]["size_bytes"] == 4 * 1024 * 1024
        _raw_write(shared_api_server.config, "UPDATE volumes SET size_bytes = size_bytes / 2 WHERE name = 'cli-1'")

        _storagectl(shared_api_server, "volume", "delete", "cli-1")
        after = r.get("/volumes", headers={"If-None-Match": etag})
        assert after.status_code == 200 and "cli-1" not in _names(after)


def test_check_repair_is_seen(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        vol = c.post("/volumes", json={"name": "lost-1", "size": "1M"}).json()
        assert _names(c.get("/volumes"))["lost-1"]["status"] == "available"
        data_dir = Path(shared_api_server.config.read_text().split('"')[1])
        images = list(data_dir.rglob(f"volumes/{vol['id']}.img"))
        assert len(images) == 1, f"backing image of {vol['id']} not found under {data_dir}"
        images[0].unlink()  # the data is gone behind the service's back
        report = _storagectl(shared_api_server, "check", "--repair")
        assert "lost-1" in json.dumps(report)
        assert _names(c.get("/volumes"))["lost-1"]["status"] == "error"
        assert c.delete("/volumes/lost-1").status_code == 204
