"""python-cinderclient attaches the way Nova does (reserve, initialize_connection, attach,
begin_detaching, terminate_connection, detach) against a real API server exporting through a real
tgtd; the returned target is checked with libiscsi and qemu-io using the returned CHAP
credentials (real logins, real reads and writes)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests import iscsi_tools as it
from tests.api_server import ApiServer, detach_loops_under, make_tokens
from tests.fixtures_tgt import remove_all_targets
from tests.test_cinder_client import PROJECT, make_client, wait_status
from tests.test_export_service import write_config

pytestmark = [pytest.mark.tgt, pytest.mark.loop]

MiB = 1024 * 1024
COMPUTE = "iqn.2026-11.test.compute:nova1"
INSTANCE = "9b4a3c1e-7d2f-4e60-8a1b-0c5d6e7f8a90"
CONNECTOR = {"initiator": COMPUTE, "ip": "198.18.0.21", "host": "nova1", "multipath": False,
             "enforce_multipath": False, "platform": "x86_64", "os_type": "linux", "do_local_attach": False}


@pytest.fixture(scope="module")
def tgt_api(tmp_path_factory: pytest.TempPathFactory, tgtd) -> Iterator[ApiServer]:
    data = tmp_path_factory.mktemp("cinder-conn") / "data"
    data.mkdir()
    server = ApiServer(write_config(data, tgtd.portal, tgtd.control_port, manage=False))
    server.tokens = make_tokens(server.config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        remove_all_targets(tgtd.control_port)
        detach_loops_under(data)


def _url(data: dict, password: str | None = None) -> str:
    return it.iscsi_url(data["target_portal"], data["target_iqn"], data["target_lun"], data["auth_username"],
                        data["auth_password"] if password is None else password)


def test_nova_attach_flow_with_cinderclient(tgt_api: ApiServer) -> None:
    cc = make_client(tgt_api)
    vol = cc.volumes.create(1, name="nova-vol")
    wait_status(lambda: cc.volumes.get(vol.id), "available")

    cc.volumes.reserve(vol)
    assert cc.volumes.get(vol.id).status == "attaching"
    info = cc.volumes.initialize_connection(vol, CONNECTOR)
    assert info["driver_volume_type"] == "iscsi"
    data = info["data"]
    assert set(data) == {"target_discovered", "target_portal", "target_iqn", "target_lun", "volume_id", "auth_method",
                         "auth_username", "auth_password", "encrypted", "qos_specs", "access_mode"}
    assert data["volume_id"] == vol.id and data["auth_method"] == "CHAP" and data["access_mode"] == "rw"

    # the compute host's view: log in with the returned credentials, write, read back
    assert it.total_size(_url(data), initiator=COMPUTE) == 1024 * MiB
    assert it.unit_serial(_url(data), initiator=COMPUTE) == vol.id.replace("-", "")
    assert not it.capacity(_url(data, password="Not-The-Secret1"), initiator=COMPUTE).ok
    io = dict(user=data["auth_username"], password=data["auth_password"], initiator=COMPUTE)
    assert it.qemu_io(data["target_portal"], data["target_iqn"], data["target_lun"], ["write -P 0x3c 0 1M"], **io).ok
    r = it.qemu_io(data["target_portal"], data["target_iqn"], data["target_lun"], ["read -P 0x3c 0 1M"], **io)
    assert r.ok and "read 1048576/1048576" in r.stdout, r.stdout + r.stderr

    cc.volumes.attach(vol, INSTANCE, "/dev/vdb", host_name="nova1")
    shown = cc.volumes.get(vol.id)
    assert shown.status == "in-use"
    (att,) = shown.attachments
    assert att["server_id"] == INSTANCE and att["device"] == "/dev/vdb" and att["host_name"] == "nova1"
    assert [v.attachments for v in cc.volumes.list() if v.id == vol.id] == [[att]]
    with pytest.raises(Exception) as err:  # noqa: PT011 - cinderclient raises ClientException subclasses
        cc.volumes.delete(vol)
    assert getattr(err.value, "code", None) == 409

    cc.volumes.begin_detaching(vol)
    assert cc.volumes.get(vol.id).status == "detaching"
    cc.volumes.roll_detaching(vol)
    assert cc.volumes.get(vol.id).status == "in-use"
    cc.volumes.begin_detaching(vol)
    cc.volumes.terminate_connection(vol, CONNECTOR)
    assert not it.capacity(_url(data), initiator=COMPUTE).ok  # the target is gone
    cc.volumes.detach(vol, att["attachment_id"])
    shown = cc.volumes.get(vol.id)
    assert shown.status == "available" and shown.attachments == []

    # the secret was in the initialize_connection answer only: not in views, not in the log
    headers = {"X-Auth-Token": tgt_api.tokens["admin"]}
    for path in (f"/v3/{PROJECT}/volumes/{vol.id}", f"/v3/{PROJECT}/volumes/detail", "/exports"):
        assert data["auth_password"] not in httpx.get(tgt_api.url + path, headers=headers).text
    assert data["auth_password"] not in tgt_api.log.read_text()
    cc.volumes.delete(vol)


def test_connection_actions_refuse_bad_bodies(tgt_api: ApiServer) -> None:
    cc = make_client(tgt_api)
    vol = cc.volumes.create(1, name="bad-bodies")
    wait_status(lambda: cc.volumes.get(vol.id), "available")
    url = f"{tgt_api.url}/v3/{PROJECT}/volumes/{vol.id}/action"
    op = {"X-Auth-Token": tgt_api.tokens["operator"]}
    cases = [
        ({"os-initialize_connection": {}}, "connector"),
        ({"os-initialize_connection": {"connector": {"initiator": COMPUTE}, "extra": 1}}, "extra"),
        ({"os-initialize_connection": {"connector": {**CONNECTOR, "password": "x"}}}, "unknown connector keys"),
        ({"os-initialize_connection": {"connector": {**CONNECTOR, "initiator": "x" * 300}}}, "initiator"),
        ({"os-initialize_connection": {"connector": {**CONNECTOR, "host_ips": ["a"] * 65}}}, "host_ips"),
        ({"os-initialize_connection": {"connector": "iqn.2026-11.x:y"}}, "connector"),
        ({"os-attach": {"mountpoint": "/dev/vdb"}}, "instance_uuid or host_name"),
        ({"os-attach": {"mountpoint": "/dev/vdb", "instance_uuid": "not-a-uuid"}}, "instance_uuid"),
        ({"os-attach": {"mountpoint": "/dev/vdb", "host_name": "h", "mode": "rx"}}, "mode"),
        ({"os-attach": {"mountpoint": "/dev/vdb", "host_name": "h", "server": 1}}, "server"),
        ({"os-reserve": {"x": 1}}, "os-reserve"),
        ({"os-detach": {"attachment_id": 5}}, "attachment_id"),
    ]
    for body, needle in cases:
        r = httpx.post(url, headers=op, json=body)
        assert r.status_code == 400, (body, r.text)
        assert needle in r.json()["badRequest"]["message"], (body, r.text)
    r = httpx.post(url, headers={**op, "Idempotency-Key": "k1"}, json={"os-initialize_connection": {"connector": CONNECTOR}})
    assert r.status_code == 400 and "CHAP" in r.text  # (Cinder says 400 for 422) its answer holds the secret: never stored for replay
    reader = {"X-Auth-Token": tgt_api.tokens["reader"]}
    assert httpx.post(url, headers=reader, json={"os-initialize_connection": {"connector": CONNECTOR}}).status_code == 403
    r = httpx.post(url, headers=op, json={"os-detach": None})
    assert r.status_code == 409 and "no attachment" in r.text
    r = httpx.post(url, headers=op, json={"os-terminate_connection": {"connector": None}})
    assert r.status_code == 202  # nothing connected: nothing to do
    cc.volumes.delete(vol)


def _storagectl(*args: str) -> "subprocess.CompletedProcess[str]":
    import os
    import subprocess

    from tests.api_server import STORAGECTL

    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    return subprocess.run([STORAGECTL, *args], capture_output=True, text=True, timeout=180, env=env)


def test_storagectl_attach_through_the_api_undoes_everything_when_the_connect_fails(tgt_api: ApiServer, tmp_path) -> None:
    """This host has no iSCSI initiator (no open-iscsi / iscsi_tcp: the real connect runs in the QEMU
    guest tier), so os-brick's connect fails after the API exported the volume: attach must leave
    the volume available and the target gone, as Nova's rollback does."""
    import json

    cc = make_client(tgt_api)
    vol = cc.volumes.create(1, name="cli-attach")
    wait_status(lambda: cc.volumes.get(vol.id), "available")
    token = tmp_path / "token"
    token.write_text(tgt_api.tokens["operator"] + "\n")
    conn = tmp_path / "connector.json"
    conn.write_text(json.dumps(CONNECTOR))
    api = ["--api", f"{tgt_api.url}/v3/{PROJECT}", "--token-file", str(token), "--state-dir", str(tmp_path / "state")]

    r = _storagectl("attach", "cli-attach", *api, "--connector", str(conn))
    assert r.returncode in (5, 10), r.stdout + r.stderr  # Unsupported (no iscsiadm) or BackendError (no iscsi_tcp)
    assert "iscsi" in (r.stdout + r.stderr).lower() and tgt_api.tokens["operator"] not in r.stdout + r.stderr
    shown = cc.volumes.get(vol.id)
    assert shown.status == "available" and shown.attachments == []
    exports = httpx.get(tgt_api.url + "/exports", headers={"X-Auth-Token": tgt_api.tokens["reader"]}).json()
    assert exports == [] and not (tmp_path / "state" / f"{vol.id}.json").exists()

    r = _storagectl("detach", "cli-attach", *api)
    assert r.returncode == 3 and "not attached here" in r.stdout + r.stderr
    r = _storagectl("attach", "cli-attach", "--api", f"{tgt_api.url}/v3", "--connector", str(conn))
    assert r.returncode == 2 and "--token-file" in r.stdout + r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CONNECTOR, "initiator": "not an iqn"}))
    r = _storagectl("attach", "cli-attach", *api, "--connector", str(bad))
    assert r.returncode == 2 and "not a valid iSCSI name" in r.stdout + r.stderr
    assert cc.volumes.get(vol.id).status == "available"  # the refused initialize was unreserved
    cc.volumes.delete(vol)


def test_connector_from_host_is_os_bricks(tgt_api: ApiServer) -> None:
    """os-brick's get_connector_properties runs for real; without open-iscsi it finds no initiator."""
    from pathlib import Path

    from storage.errors import BackendError
    from storage.host.compute import connector_from_host

    if Path("/etc/iscsi/initiatorname.iscsi").exists():
        props = connector_from_host(tgt_api.url)
        assert props["initiator"].startswith("iqn.") and props["ip"] == "127.0.0.1" and "platform" in props
    else:
        with pytest.raises(BackendError, match="no iSCSI initiator name"):
            connector_from_host(tgt_api.url)
