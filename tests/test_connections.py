"""st.connections (Cinder connection actions) against a real tgtd: the target a connector gets,
its ACL and CHAP checked with libiscsi and qemu-io (real logins, real reads and writes)."""

from __future__ import annotations

import pytest

from storage.domain import VolumeStatus
from storage.errors import Conflict, InvalidInput, NotFound
from tests import iscsi_tools as it
from tests.test_export_service import est  # noqa: F401 - fixture

pytestmark = [pytest.mark.tgt, pytest.mark.loop, pytest.mark.both_catalogs]

MiB = 1024 * 1024
COMPUTE = "iqn.2026-11.test.compute:node1"
OTHER = "iqn.2026-11.test.compute:node2"


def connector(initiator: str = COMPUTE, **extra) -> dict:
    return {"initiator": initiator, "ip": "198.18.0.20", "host": "compute1", "multipath": False,
            "enforce_multipath": False, "platform": "x86_64", "os_type": "linux", **extra}


def url(data: dict, lun: int | None = None, password: str | None = None) -> str:
    return it.iscsi_url(data["target_portal"], data["target_iqn"], data["target_lun"] if lun is None else lun,
                        data["auth_username"], data["auth_password"] if password is None else password)


def test_initialize_gives_a_target_only_that_initiator_reaches(est) -> None:
    vol = est.volumes.create("cv1", "16M")
    info = est.connections.initialize("cv1", connector())
    assert info["driver_volume_type"] == "iscsi"
    data = info["data"]
    assert data["target_iqn"].endswith(f":volume-{vol.id}") and data["target_lun"] == 1
    assert data["auth_method"] == "CHAP" and len(data["auth_password"]) == 16
    assert data["target_discovered"] is False and data["access_mode"] == "rw" and data["encrypted"] is False
    assert data["volume_id"] == vol.id and "target_portals" not in data
    # the device is held by the target, the status is the Cinder actions' business
    assert est.volumes.get("cv1").status == VolumeStatus.AVAILABLE
    assert est.exports.get("cv1").initiators == [COMPUTE] and est.exports.get("cv1").origin == "connection"

    assert it.total_size(url(data), initiator=COMPUTE) == 16 * MiB
    assert not it.capacity(url(data), initiator=OTHER).ok  # the ACL names one initiator
    assert not it.capacity(url(data, password="Wrong-Secret-00"), initiator=COMPUTE).ok  # CHAP holds
    w = it.qemu_io(data["target_portal"], data["target_iqn"], 1, ["write -P 0x5a 1M 64k"],
                   user=data["auth_username"], password=data["auth_password"], initiator=COMPUTE)
    assert w.ok, w.stderr
    r = it.qemu_io(data["target_portal"], data["target_iqn"], 1, ["read -P 0x5a 1M 64k"],
                   user=data["auth_username"], password=data["auth_password"], initiator=COMPUTE)
    assert r.ok and "read 65536/65536" in r.stdout, r.stdout + r.stderr

    # again for the same initiator: same target and secret; multipath adds os-brick's plural keys
    again = est.connections.initialize("cv1", connector(multipath=True))["data"]
    assert again["auth_password"] == data["auth_password"] and again["target_portals"] == [data["target_portal"]]
    # a second compute host is added to the ACL, and its terminate takes it off again
    est.connections.initialize("cv1", connector(OTHER, host="compute2"))
    assert est.exports.get("cv1").initiators == [COMPUTE, OTHER]
    assert it.total_size(url(data), initiator=OTHER) == 16 * MiB
    est.connections.terminate("cv1", connector(OTHER))
    assert est.exports.get("cv1").initiators == [COMPUTE]
    est.connections.terminate("cv1", connector(OTHER))  # idempotent
    est.connections.terminate("cv1", connector())
    with pytest.raises(NotFound):  # the last initiator took the target and its device along
        est.exports.get("cv1")
    assert not it.capacity(url(data), initiator=COMPUTE).ok
    assert est.host.attached_device(vol.pool, vol.id) is None
    assert est.volumes.get("cv1").status == VolumeStatus.AVAILABLE


def test_attach_bookkeeping_moves_the_status_by_compare_and_set(est) -> None:
    est.volumes.create("cv2", "8M")
    est.connections.reserve("cv2")
    assert est.volumes.get("cv2").status == VolumeStatus.ATTACHING
    with pytest.raises(Conflict, match="attaching"):
        est.connections.reserve("cv2")  # one winner
    est.connections.unreserve("cv2")
    est.connections.unreserve("cv2")  # a no-op when not reserved, as Cinder's
    assert est.volumes.get("cv2").status == VolumeStatus.AVAILABLE

    est.connections.reserve("cv2")
    info = est.connections.initialize("cv2", connector())["data"]
    att = est.connections.attach("cv2", mountpoint="/dev/vdb", instance_uuid="6f1c0a57-0000-4000-8000-000000000001")
    assert est.volumes.get("cv2").status == VolumeStatus.IN_USE
    assert [a.mountpoint for a in est.connections.attachments()[est.volumes.get("cv2").id]] == ["/dev/vdb"]
    with pytest.raises(Conflict):
        est.connections.attach("cv2", mountpoint="/dev/vdc", host_name="compute1")  # not multiattach
    with pytest.raises(Conflict, match="in-use"):
        est.volumes.delete("cv2")
    est.volumes.extend("cv2", "12M")  # online: the LUN grows for the compute host
    assert it.total_size(url(info), initiator=COMPUTE) == 12 * MiB
    assert est.volumes.get("cv2").status == VolumeStatus.IN_USE

    est.connections.begin_detaching("cv2")
    est.connections.roll_detaching("cv2")
    assert est.volumes.get("cv2").status == VolumeStatus.IN_USE
    est.connections.begin_detaching("cv2")
    est.connections.terminate("cv2", connector())
    with pytest.raises(NotFound):
        est.connections.detach("cv2", "00000000-0000-4000-8000-000000000000")
    est.connections.detach("cv2", att.id)
    assert est.volumes.get("cv2").status == VolumeStatus.AVAILABLE and est.connections.attachments() == {}
    with pytest.raises(Conflict, match="no attachment"):
        est.connections.detach("cv2")
    with pytest.raises(Conflict, match="no attachment"):
        est.connections.begin_detaching("cv2")


def test_delete_takes_a_connection_target_along_and_bad_connectors_are_refused(est) -> None:
    vol = est.volumes.create("cv3", "8M")
    with pytest.raises(InvalidInput, match="no initiator"):
        est.connections.initialize("cv3", {"host": "compute1"})
    with pytest.raises(InvalidInput, match="not a valid iSCSI name"):
        est.connections.initialize("cv3", connector("nope"))
    with pytest.raises(InvalidInput, match="unknown connector keys"):
        est.connections.initialize("cv3", connector(password="x"))
    data = est.connections.initialize("cv3", connector())["data"]
    est.volumes.delete("cv3")  # available, connected, not attached: as Cinder, the export goes with it
    assert not it.capacity(url(data), initiator=COMPUTE).ok
    assert est.host.attached_device(vol.pool, vol.id) is None
    assert est.exports.list() == []


def test_check_repair_leaves_a_connection_and_a_reservation_alone(est) -> None:
    """A connection's target holds a loop device with no attachment row, and os-reserve's
    'attaching' has no owner process: neither is a stale device nor a stuck operation."""
    vol = est.volumes.create("cv4", "8M")
    est.connections.reserve("cv4")
    data = est.connections.initialize("cv4", connector())["data"]
    report = est.check(repair=True, stale_after=0)
    assert [f for f in report.findings if f.kind in ("stale_device", "stuck_volume")] == [], report.findings
    assert est.volumes.get("cv4").status == VolumeStatus.ATTACHING
    assert it.total_size(url(data), initiator=COMPUTE) == 8 * MiB
    est.connections.attach("cv4", mountpoint="/dev/vdb", host_name="compute1")
    est.connections.begin_detaching("cv4")
    assert [f for f in est.check(repair=True, stale_after=0).findings if f.object_id == vol.id] == []
    assert est.volumes.get("cv4").status == VolumeStatus.DETACHING
    est.connections.terminate("cv4", None)  # null connector: every connection (Cinder's force detach)
    est.connections.detach("cv4")
    assert est.exports.list() == [] and est.volumes.get("cv4").status == VolumeStatus.AVAILABLE


@pytest.mark.parametrize(("status", "owner", "running"), [
    (VolumeStatus.ATTACHING, None, False), (VolumeStatus.DETACHING, None, False),
    (VolumeStatus.ATTACHING, "h:1:2", True), (VolumeStatus.DETACHING, "h:1:2", True),
    (VolumeStatus.EXTENDING, None, True), (VolumeStatus.IN_USE, None, False), (VolumeStatus.AVAILABLE, "h:1:2", False),
])  # fmt: skip
def test_volume_in_operation(status: VolumeStatus, owner: str | None, running: bool) -> None:
    from storage.volumes.check import volume_in_operation

    assert volume_in_operation(status, owner) is running


def test_terminate_keeps_a_device_attached_on_the_storage_host_meanwhile(est) -> None:
    vol = est.volumes.create("cv5", "8M")
    est.connections.initialize("cv5", connector())
    local = est.volumes.attach("cv5")  # the same loop device, now the storage host's attachment too
    assert local.attached_device == est.exports.get("cv5").device_path
    est.connections.terminate("cv5", connector())
    assert est.host.attached_device(vol.pool, vol.id) == local.attached_device
    assert est.volumes.detach("cv5").status == VolumeStatus.AVAILABLE
    assert est.host.attached_device(vol.pool, vol.id) is None
