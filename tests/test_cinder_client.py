"""python-cinderclient (the real client) drives the Cinder v3 subset on a real server."""

from __future__ import annotations

import time

import httpx
import pytest
from cinderclient import client as cinder_client
from cinderclient import exceptions as cinder_exc
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

PROJECT = "0123456789abcdef0123456789abcdef"


def make_client(server: ApiServer, role: str = "operator", version: str = "3.40", project: str | None = PROJECT):
    endpoint = f"{server.url}/v3/{project}" if project else f"{server.url}/v3"
    sess = ks_session.Session(auth=token_endpoint.Token(endpoint, server.tokens[role]))
    return cinder_client.Client(version, session=sess, os_endpoint=endpoint)


def wait_status(getter, wanted: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        obj = getter()
        if obj.status == wanted:
            return obj
        if obj.status == "error" or time.monotonic() > deadline:
            raise AssertionError(f"{obj} is {obj.status}, wanted {wanted}")
        time.sleep(0.2)


def test_version_discovery(shared_api_server: ApiServer) -> None:
    r = httpx.get(shared_api_server.url + "/")
    assert r.status_code == 300
    (v3,) = r.json()["versions"]
    assert v3["id"] == "v3.0" and v3["min_version"] == "3.0" and v3["status"] == "CURRENT"
    r = httpx.get(shared_api_server.url + "/v3/")
    assert r.status_code == 200 and r.json()["versions"][0]["version"] == v3["version"]
    # cinderclient's own discovery helper reads the same document
    low, high = cinder_client.get_server_version(shared_api_server.url + f"/v3/{PROJECT}")
    assert str(low.get_string()) == "3.0" and high.get_string() == v3["version"]


@pytest.mark.parametrize("project", [PROJECT, None])
def test_volume_lifecycle_with_cinderclient(shared_api_server: ApiServer, project: str | None) -> None:
    cc = make_client(shared_api_server, project=project)
    suffix = "p" if project else "np"
    vol = cc.volumes.create(1, name=f"cc-{suffix}", metadata={"app": "db"})
    assert vol.size == 1 and vol.name == f"cc-{suffix}"
    vol = wait_status(lambda: cc.volumes.get(vol.id), "available")
    assert vol.volume_type == "default" and vol.metadata == {"app": "db"} and vol.bootable == "false"
    assert vol.id in [v.id for v in cc.volumes.list()]
    assert vol.id in [v.id for v in cc.volumes.list(detailed=False)]

    cc.volumes.extend(vol, 2)
    assert wait_status(lambda: cc.volumes.get(vol.id), "available").size == 2

    cc.volumes.update(vol, name=f"cc-{suffix}-renamed")
    assert cc.volumes.get(vol.id).name == f"cc-{suffix}-renamed"

    snap = cc.volume_snapshots.create(vol.id, name=f"cc-{suffix}-snap")
    snap = wait_status(lambda: cc.volume_snapshots.get(snap.id), "available")
    assert snap.volume_id == vol.id and snap.size == 2
    assert snap.id in [s.id for s in cc.volume_snapshots.list()]
    cc.volumes.revert_to_snapshot(vol, snap)
    wait_status(lambda: cc.volumes.get(vol.id), "available")

    from_snap = cc.volumes.create(2, snapshot_id=snap.id, name=f"cc-{suffix}-from-snap")
    assert wait_status(lambda: cc.volumes.get(from_snap.id), "available").snapshot_id == snap.id
    cc.volumes.delete(from_snap)

    with pytest.raises(cinder_exc.ClientException) as err:  # snapshots exist: refused
        cc.volumes.delete(vol)
    assert err.value.code == 409
    cc.volume_snapshots.delete(snap)
    cc.volumes.delete(vol)
    with pytest.raises(cinder_exc.NotFound):
        cc.volumes.get(vol.id)


def test_cinder_errors_and_limits(shared_api_server: ApiServer) -> None:
    cc = make_client(shared_api_server)
    with pytest.raises(cinder_exc.NotFound) as err:
        cc.volumes.get("00000000-0000-0000-0000-000000000000")
    assert "not found" in str(err.value)
    with pytest.raises(cinder_exc.BadRequest):
        cc.volumes.create(0, name="zero")
    limits = cc.limits.get()
    absolute = {lim.name: lim.value for lim in limits.absolute}
    assert absolute["maxTotalVolumes"] == -1 and "totalGigabytesUsed" in absolute
    # raw bodies are Cinder's own
    headers = {"X-Auth-Token": shared_api_server.tokens["reader"]}
    r = httpx.get(f"{shared_api_server.url}/v3/{PROJECT}/volumes/nope", headers=headers)
    assert r.status_code == 404 and r.json()["itemNotFound"]["code"] == 404
    r = httpx.post(f"{shared_api_server.url}/v3/{PROJECT}/volumes", headers={"X-Auth-Token": shared_api_server.tokens["operator"]}, json={"volume": {"size": "big"}})
    assert r.status_code == 400 and "size" in r.json()["badRequest"]["message"]
    r = httpx.post(f"{shared_api_server.url}/v3/{PROJECT}/volumes", headers={"X-Auth-Token": shared_api_server.tokens["operator"]},
                   json={"volume": {"size": 10**6, "name": "huge"}})  # 1 PiB: within bounds.SIZE_MAX
    assert r.status_code == 413 and r.json()["overLimit"]["code"] == 413  # past the pool's capacity
    r = httpx.get(f"{shared_api_server.url}/v3/{PROJECT}/volumes")
    assert r.status_code == 401 and "unauthorized" in r.json()
    r = httpx.get(f"{shared_api_server.url}/v3/volumes", headers={**headers, "OpenStack-API-Version": "volume 3.999"})
    assert r.status_code == 406
    r = httpx.get(f"{shared_api_server.url}/v3/volumes", headers={**headers, "OpenStack-API-Version": "volume 3.40"})
    assert r.status_code == 200 and r.headers["OpenStack-API-Version"] == "volume 3.40"


def test_cinder_roles(shared_api_server: ApiServer) -> None:
    reader = make_client(shared_api_server, role="reader")
    with pytest.raises(cinder_exc.Forbidden):
        reader.volumes.create(1, name="nope")
    cc = make_client(shared_api_server)
    vol = cc.volumes.create(1, name="cc-reset")
    with pytest.raises(cinder_exc.Forbidden):  # operator may not reset status
        cc.volumes.reset_state(vol, "error")
    admin = make_client(shared_api_server, role="admin")
    admin.volumes.reset_state(vol, "error")
    assert cc.volumes.get(vol.id).status == "error"
    cc.volumes.delete(vol)


def test_backup_restore_with_cinderclient(shared_api_server: ApiServer) -> None:
    import os

    from tests.test_api_backups import fill_volume, read_volume

    cc = make_client(shared_api_server)
    vol = cc.volumes.create(1, name="cc-bk")
    wait_status(lambda: cc.volumes.get(vol.id), "available")
    data = os.urandom(1024 * 1024)
    fill_volume(shared_api_server.config, "cc-bk", data, offset=4096)

    backup = cc.backups.create(vol.id, name="cc-bk-1", description="nightly, before the upgrade")
    assert backup.name == "cc-bk-1"
    backup = wait_status(lambda: cc.backups.get(backup.id), "available")
    assert backup.volume_id == vol.id and backup.size == 1 and backup.is_incremental is False
    assert backup.description == "nightly, before the upgrade"  # stored (migration 0014), not dropped
    assert backup.id in [b.id for b in cc.backups.list()]
    assert backup.id in [b.id for b in cc.backups.list(detailed=False)]

    restore = cc.restores.restore(backup.id, name="cc-bk-restored")
    assert restore.backup_id == backup.id
    wait_status(lambda: cc.volumes.get(restore.volume_id), "available")
    deadline = time.monotonic() + 60  # the restore job runs after the volume exists
    while read_volume(shared_api_server.config, "cc-bk-restored", 4096 + len(data))[4096:] != data:
        assert time.monotonic() < deadline, "restored data never appeared"
        time.sleep(0.2)
    wait_status(lambda: cc.volumes.get(restore.volume_id), "available")  # the job has finished

    with pytest.raises(cinder_exc.NotFound):
        cc.backups.get("00000000-0000-0000-0000-000000000000")
    cc.backups.delete(backup)
    with pytest.raises(cinder_exc.NotFound):
        cc.backups.get(backup.id)
    for v in (restore.volume_id, vol.id):
        cc.volumes.delete(v)


def test_cinder_cli_negotiates_the_version(shared_api_server: ApiServer) -> None:
    """The real `cinder` shell GETs / first, reads the versions document and downgrades to our maximum."""
    import subprocess
    import sys
    from pathlib import Path

    cinder = Path(sys.executable).parent / "cinder"
    r = subprocess.run(
        [str(cinder), "--os-auth-type", "noauth", "--os-user-id", "u", "--os-project-id", PROJECT,
         "--os-endpoint", f"{shared_api_server.url}/v3/{PROJECT}", "api-version"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "v3.0" in r.stdout and "3.70" in r.stdout and "CURRENT" in r.stdout


def test_types_snapshot_update_and_force_delete(shared_api_server: ApiServer) -> None:
    cc = make_client(shared_api_server)
    types = cc.volume_types.list()
    assert [t.name for t in types] == ["default"]
    assert cc.volume_types.default().name == "default"
    with pytest.raises(cinder_exc.NotFound):
        cc.volume_types.get("gold")
    with pytest.raises(cinder_exc.NotFound):  # volume_type names the pool
        cc.volumes.create(1, name="cc-gold", volume_type="gold")

    vol = cc.volumes.create(1, name="cc-force")
    snap = cc.volume_snapshots.create(vol.id, name="cc-force-s")
    cc.volume_snapshots.update(snap, name="cc-force-s2")
    assert cc.volume_snapshots.get(snap.id).name == "cc-force-s2"
    assert [s.id for s in cc.volume_snapshots.list(search_opts={"volume_id": vol.id})] == [snap.id]
    cc.volumes.force_delete(vol)  # takes its snapshot along
    with pytest.raises(cinder_exc.NotFound):
        cc.volumes.get(vol.id)
    with pytest.raises(cinder_exc.NotFound):
        cc.volume_snapshots.get(snap.id)
