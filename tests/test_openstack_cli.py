"""The real `openstack` CLI (python-openstackclient, on openstacksdk) drives the Cinder subset of a
real API server: token auth (`admin_token`: a bare endpoint + our token), `-f json` output parsed.

Each `openstack` start costs ~1.5 s of CPU, so assertions are grouped and independent commands run
two at a time: about 48 invocations, 77-82 s of CPU in all, server included. Over 60 s: measured
62 s wall on the 2 cores nearly idle, 3 minutes at a load of 10.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

OPENSTACK = Path(sys.executable).parent / "openstack"
PROJECT = "0123456789abcdef0123456789abcdef"
pytestmark = pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient (the [test] extra) is not installed")


def osc_env(server: ApiServer, role: str = "operator", *, project: str | None = PROJECT, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "STORAGE_"))}
    endpoint = f"{server.url}/v3/{project}" if project else f"{server.url}/v3"
    env.update({"OS_AUTH_TYPE": "admin_token", "OS_ENDPOINT": endpoint, "OS_TOKEN": server.tokens[role], **extra})
    return env


def osc(server: ApiServer, *args: str, role: str = "operator", ok: bool = True, env: dict[str, str] | None = None):
    """Run `openstack ARGS`; with ok, assert exit 0 and return the parsed `-f json` output (or
    stdout when the command prints none); without, assert a failure and return stderr."""
    r = subprocess.run([str(OPENSTACK), *args], capture_output=True, text=True, timeout=120,
                       env=env or osc_env(server, role))
    if not ok:
        assert r.returncode != 0, f"openstack {' '.join(args)} succeeded: {r.stdout}"
        assert "Traceback" not in r.stderr, r.stderr
        return r.stderr
    assert r.returncode == 0, f"openstack {' '.join(args)} failed ({r.returncode}): {r.stderr}"
    return json.loads(r.stdout) if "-f" in args and "json" in args else r.stdout


def osc_all(server: ApiServer, *commands: tuple[str, ...]) -> list:
    """Independent `-f json` commands, two at a time (each `openstack` start is CPU-bound)."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda args: osc(server, *args), commands))


def wait_for(server: ApiServer, collection: str, item_id: str, wanted: str = "available", timeout: float = 60) -> dict:
    """Poll the Cinder API directly (cheaper than an `openstack` start per poll)."""
    key = collection.rstrip("s")
    with httpx.Client(headers={"X-Auth-Token": server.tokens["reader"]}, timeout=10) as c:
        deadline = time.monotonic() + timeout
        while True:
            item = c.get(f"{server.url}/v3/{PROJECT}/{collection}/{item_id}").json()[key]
            if item["status"] == wanted:
                return item
            assert item["status"] != "error" and time.monotonic() < deadline, f"{collection} {item_id}: {item}"
            time.sleep(0.2)


def test_openstack_volume_and_snapshot_lifecycle(shared_api_server: ApiServer) -> None:
    s = shared_api_server
    vol, other = osc_all(
        s,
        ("volume", "create", "--size", "1", "--type", "default", "--description", "orders db",
         "--property", "app=db", "--property", "tier=gold", "os-v1", "-f", "json"),
        ("volume", "create", "--size", "1", "os-v2", "-f", "json"),
    )
    assert vol["name"] == "os-v1" and vol["size"] == 1 and vol["type"] == "default"
    assert vol["properties"] == {"app": "db", "tier": "gold"} and vol["description"] == "orders db"
    wait_for(s, "volumes", vol["id"])
    wait_for(s, "volumes", other["id"])

    listed, by_name, by_property, paged = osc_all(
        s,
        ("volume", "list", "--long", "-f", "json"),
        ("volume", "list", "--name", "os-v2", "--status", "available", "-f", "json"),
        ("volume", "list", "--property", "tier=gold", "-f", "json"),
        ("volume", "list", "--limit", "1", "-f", "json"),
    )
    row = next(r for r in listed if r["ID"] == vol["id"])
    assert row["Name"] == "os-v1" and row["Status"] == "available" and row["Type"] == "default"
    assert row["Properties"] == {"app": "db", "tier": "gold"}
    assert [r["Name"] for r in by_name] == ["os-v2"]
    assert [r["Name"] for r in by_property] == ["os-v1"]
    # pages of one: openstacksdk follows our next links (marker = last id) to the end
    ids = [r["ID"] for r in listed]
    assert [r["ID"] for r in paged] == ids
    assert [r["ID"] for r in osc(s, "volume", "list", "--limit", "1", "--marker", ids[0], "-f", "json")] == ids[1:]

    osc(s, "volume", "set", "--name", "os-v1b", "--description", "orders db, renamed", "--property", "owner=ops",
        "--size", "2", "os-v1")
    shown = osc(s, "volume", "show", "os-v1b", "-f", "json")
    assert shown["size"] == 2 and shown["description"] == "orders db, renamed"
    assert shown["properties"] == {"app": "db", "tier": "gold", "owner": "ops"} and shown["volume_type_id"] == "default"
    osc(s, "volume", "unset", "--property", "tier", "os-v1b")
    assert osc(s, "volume", "show", vol["id"], "-f", "json")["properties"] == {"app": "db", "owner": "ops"}
    osc(s, "volume", "set", "--no-property", "--property", "only=this", "os-v1b")
    assert osc(s, "volume", "show", vol["id"], "-f", "json")["properties"] == {"only": "this"}

    snap = osc(s, "volume", "snapshot", "create", "--volume", "os-v1b", "--description", "before upgrade",
               "--property", "why=upgrade", "os-s1", "-f", "json")
    assert snap["volume_id"] == vol["id"] and snap["size"] == 2 and snap["properties"] == {"why": "upgrade"}
    wait_for(s, "snapshots", snap["id"])
    osc(s, "volume", "snapshot", "set", "--name", "os-s1b", "--description", "kept", "--property", "keep=yes", "os-s1")
    osc(s, "volume", "snapshot", "unset", "--property", "why", "os-s1b")
    shown = osc(s, "volume", "snapshot", "show", snap["id"], "-f", "json")
    assert shown["name"] == "os-s1b" and shown["description"] == "kept" and shown["properties"] == {"keep": "yes"}
    snaps = osc(s, "volume", "snapshot", "list", "--long", "--volume", "os-v1b", "--name", "os-s1b", "-f", "json")
    assert [(r["ID"], r["Status"], r["Description"]) for r in snaps] == [(snap["id"], "available", "kept")]

    copy = osc(s, "volume", "create", "--snapshot", "os-s1b", "os-v1-copy", "-f", "json")
    assert copy["snapshot_id"] == snap["id"] and copy["size"] == 2
    wait_for(s, "volumes", copy["id"])

    err = osc(s, "volume", "delete", "os-v1b", ok=False)  # its snapshot is in the way: our message
    assert "409" in err and "has 1 snapshot(s): os-s1b" in err and "cascade" in err
    osc(s, "volume", "snapshot", "delete", "os-s1b")
    osc(s, "volume", "delete", "os-v1b", "os-v1-copy", "os-v2")
    remaining = {r["Name"] for r in osc(s, "volume", "list", "-f", "json")}
    assert not remaining & {"os-v1b", "os-v1-copy", "os-v2"}
    assert "No Volume found for os-v1b" in osc(s, "volume", "show", "os-v1b", ok=False)


def test_openstack_backup_restore(shared_api_server: ApiServer) -> None:
    from tests.test_api_backups import fill_volume, read_volume

    s = shared_api_server
    vol = osc(s, "volume", "create", "--size", "1", "os-bk", "-f", "json")
    wait_for(s, "volumes", vol["id"])
    data = os.urandom(256 * 1024)
    fill_volume(s.config, "os-bk", data, offset=8192)

    backup = osc(s, "volume", "backup", "create", "--name", "os-bk-1", "--property", "kind=nightly", "os-bk", "-f", "json")
    assert backup["name"] == "os-bk-1" and backup["volume_id"] == vol["id"]
    wait_for(s, "backups", backup["id"])
    shown, listed, none = osc_all(
        s,
        ("volume", "backup", "show", "os-bk-1", "-f", "json"),
        ("volume", "backup", "list", "--long", "--volume", "os-bk", "--status", "available", "-f", "json"),
        ("volume", "backup", "list", "--name", "no-such-backup", "-f", "json"),
    )
    assert shown["status"] == "available" and shown["size"] == 1 and shown["is_incremental"] is False
    assert shown["metadata"] == {"kind": "nightly"} and shown["volume_id"] == vol["id"]
    assert [(r["ID"], r["Name"], r["Volume"]) for r in listed] == [(backup["id"], "os-bk-1", vol["id"])]
    assert none == []

    restored = osc(s, "volume", "backup", "restore", "os-bk-1", "os-bk-restored", "-f", "json")
    assert restored["volume_name"] == "os-bk-restored"
    wait_for(s, "volumes", restored["volume_id"])
    deadline = time.monotonic() + 60  # the restore job fills the new volume after it exists
    while read_volume(s.config, "os-bk-restored", 8192 + len(data))[8192:] != data:
        assert time.monotonic() < deadline, "restored data never appeared"
        time.sleep(0.2)
    wait_for(s, "volumes", restored["volume_id"])  # the job has finished

    # onto an existing volume: osc insists on --force, then restores in place
    assert "--force" in osc(s, "volume", "backup", "restore", "os-bk-1", "os-bk", ok=False)
    fill_volume(s.config, "os-bk", b"\0" * len(data), offset=8192)
    in_place = osc(s, "volume", "backup", "restore", "--force", "os-bk-1", "os-bk", "-f", "json")
    assert in_place["volume_id"] == vol["id"]
    wait_for(s, "volumes", vol["id"])
    assert read_volume(s.config, "os-bk", 8192 + len(data))[8192:] == data

    osc(s, "volume", "backup", "delete", "os-bk-1")
    assert "No Backup found for os-bk-1" in osc(s, "volume", "backup", "show", "os-bk-1", ok=False)
    osc(s, "volume", "delete", "os-bk", "os-bk-restored")


def test_openstack_errors_auth_and_config(shared_api_server: ApiServer, tmp_path: Path) -> None:
    """Bad input is refused with our message and exit != 0; roles and tokens hold; clouds.yaml and a
    project-less endpoint work."""
    s = shared_api_server
    vol = osc(s, "volume", "create", "--size", "1", "os-err", "-f", "json")
    wait_for(s, "volumes", vol["id"])
    # independent refusals, two at a time (each `openstack` start is CPU-bound)
    cases = {
        ("volume", "create", "--size", "1", "bad name"): ["400", "volume name 'bad name' is not accepted; accepted:"],
        ("volume", "create", "--size", "99999999", "os-huge"):
            ["size 99999999 is out of range; accepted: a whole number of GiB from 1 to 8388608"],
        ("volume", "create", "--size", "1", "--type", "gold", "os-gold"): ["pool 'gold' is not configured; configured pools: default"],
        ("volume", "create", "--size", "1", "os-err"): ["409", "exists already"],
        ("volume", "set", "--property", "bad key=1", "os-err"): ["label 'bad key'='1' is not accepted; accepted:"],
        ("volume", "set", "--description", "x" * 300, "os-err"):
            ["description is not accepted; accepted: a string of at most 255 characters"],
        ("volume", "unset", "--property", "absent", "os-err"): ["404", "'absent' not found"],
        ("volume", "list", "--marker", "no-such-volume"): ["marker 'no-such-volume' is not the id of a volume in this listing"],
        ("--os-token", s.tokens["reader"], "volume", "create", "--size", "1", "os-rd"): ["403", "needs role 'operator'"],
        ("--os-token", "not-a-token", "volume", "list"): ["401"],
    }
    with ThreadPoolExecutor(2) as pool:
        errors = dict(zip(cases, pool.map(lambda args: osc(s, *args, ok=False), cases), strict=True))
    for args, wanted in cases.items():
        for text in wanted:
            assert text in errors[args], (args, errors[args])
        assert s.tokens["operator"] not in errors[args] and s.tokens["reader"] not in errors[args]

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  storage:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {s.url}/v3\n      token: {s.tokens['reader']}\n"
    )
    clouds.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "STORAGE_"))}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    shown = osc(s, "--os-cloud", "storage", "volume", "show", "os-err", "-f", "json", env=env)
    assert shown["id"] == vol["id"] and shown["os-vol-tenant-attr:tenant_id"] is None  # project-less
    osc(s, "volume", "delete", "os-err")


def test_cinder_listing_links_and_metadata_raw(shared_api_server: ApiServer) -> None:
    """What the CLI relies on, at the HTTP level: next links keep the filters, metadata calls answer
    Cinder's bodies, and bad filters are refused before any parsing."""
    s = shared_api_server
    with httpx.Client(base_url=f"{s.url}/v3/{PROJECT}", headers={"X-Auth-Token": s.tokens["operator"]}, timeout=30) as c:
        ids = []
        for i in range(3):
            r = c.post("/volumes", json={"volume": {"size": 1, "name": f"raw-{i}", "metadata": {"set": "raw"}}})
            assert r.status_code == 202, r.text
            ids.append(r.json()["volume"]["id"])
        r = c.get("/volumes", params={"limit": 2, "metadata": '{"set": "raw"}'})
        body = r.json()
        assert [v["id"] for v in body["volumes"]] == ids[:2]
        (link,) = body["volumes_links"]
        assert link["rel"] == "next" and f"marker={ids[1]}" in link["href"] and "metadata=" in link["href"]
        body = c.get(link["href"]).json()
        assert [v["id"] for v in body["volumes"]] == ids[2:] and "volumes_links" not in body

        assert c.post(f"/volumes/{ids[0]}/metadata", json={"metadata": {"a": "1"}}).json() == {"metadata": {"set": "raw", "a": "1"}}
        assert c.get(f"/volumes/{ids[0]}/metadata/a").json() == {"meta": {"a": "1"}}
        assert c.put(f"/volumes/{ids[0]}/metadata/b", json={"meta": {"b": "2"}}).json() == {"meta": {"b": "2"}}
        r = c.put(f"/volumes/{ids[0]}/metadata/b", json={"meta": {"c": "2"}})
        assert r.status_code == 400 and "exactly the key in the path ('b')" in r.json()["badRequest"]["message"]
        assert c.put(f"/volumes/{ids[0]}/metadata", json={"metadata": {"x": "y"}}).json() == {"metadata": {"x": "y"}}
        assert c.delete(f"/volumes/{ids[0]}/metadata/x").status_code == 200
        assert c.get(f"/volumes/{ids[0]}/metadata").json() == {"metadata": {}}
        assert c.get(f"/volumes/{ids[0]}/metadata/x").status_code == 404
        r = c.post(f"/volumes/{ids[0]}/metadata", json={"metadata": {"k": "v"}, "other": 1})
        assert r.status_code == 400 and "unknown keys ['other']" in r.json()["badRequest"]["message"]
        r = c.get("/volumes", params={"metadata": "[1, 2]"})
        assert r.status_code == 400 and "is not an object" in r.json()["badRequest"]["message"]
        r = c.get("/volumes", params={"metadata": "{" * 5000})
        assert r.status_code == 400  # bounded before parsing
        r = c.get("/volumes", params={"limit": 10**6})
        assert r.status_code == 400 and "limit" in r.json()["badRequest"]["message"]
        r = c.get(f"/volumes/{ids[0]}/metadata/" + "k" * 64)
        assert r.status_code == 400
        # python-cinderclient's metadata calls land on the same endpoints
        from tests.test_cinder_client import make_client

        cc = make_client(s)
        cc.volumes.set_metadata(ids[1], {"env": "prod", "team": "db"})
        cc.volumes.delete_metadata(ids[1], ["team"])
        assert cc.volumes.get(ids[1]).metadata == {"set": "raw", "env": "prod"}
        cc.volumes.update_all_metadata(ids[1], {"only": "this"})
        snap = cc.volume_snapshots.create(ids[1], name="raw-s")
        cc.volume_snapshots.set_metadata(snap.id, {"k": "v"})
        cc.volume_snapshots.update(snap.id, description="raw snapshot")
        snap = cc.volume_snapshots.get(snap.id)
        assert snap.metadata == {"k": "v"} and snap.description == "raw snapshot"
        assert cc.volumes.get(ids[1]).metadata == {"only": "this"}
        cc.volume_snapshots.delete(snap.id)
        with httpx.Client(headers={"X-Auth-Token": s.tokens["reader"]}) as reader:
            r = reader.post(f"{s.url}/v3/volumes/{ids[0]}/metadata", json={"metadata": {"k": "v"}})
            assert r.status_code == 403
        for vid in ids:
            assert c.delete(f"/volumes/{vid}").status_code == 202
