"""Inside the QEMU guest tier: LIO export of a volume, os-brick ISCSIConnector over 127.0.0.1.

Runs where configfs, the LIO modules and open-iscsi exist (the guest; STORAGE_IN_GUEST=1).
The volume is a file-pool volume on a loop device (the LVM driver is tested by its own tier);
data written through the initiator's /dev/sdX is read back from the volume's backing file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.host import attach
from storage.errors import BackendError

MiB = 1024 * 1024
INITIATOR = "iqn.2026-11.test.guest:client"

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(
        not Path("/sys/kernel/config").is_dir() or shutil.which("iscsiadm") is None,
        reason="needs the QEMU guest tier: configfs with LIO and open-iscsi (iscsiadm, iscsid, iscsi_tcp)",
    ),
]


@pytest.fixture(scope="module")
def iscsid() -> Iterator[None]:
    """open-iscsi's daemon with a known initiator name (no systemd in the guest)."""
    subprocess.run(["mount", "-t", "configfs", "none", "/sys/kernel/config"], capture_output=True, check=False)
    Path("/etc/iscsi").mkdir(parents=True, exist_ok=True)
    Path("/etc/iscsi/initiatorname.iscsi").write_text(f"InitiatorName={INITIATOR}\n")
    Path("/run/lock/iscsi").mkdir(parents=True, exist_ok=True)
    # Its own session: on SIGTERM iscsid signals its whole process group, which would be ours.
    proc = subprocess.Popen(
        ["iscsid", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    time.sleep(0.5)
    try:
        yield
    finally:
        subprocess.run(["iscsiadm", "-m", "node", "--logoutall=all"], capture_output=True, check=False)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def gst(tmp_path: Path, iscsid) -> Iterator[storage.Storage]:
    data = tmp_path / "data"
    data.mkdir()
    cfg = data / "storage.toml"
    cfg.write_text(f'data_dir = "{data}"\n[export]\ndriver = "lio"\nportal = "127.0.0.1:3260"\n')
    st = storage.open(cfg)
    try:
        yield st
    finally:
        for exp in st.exports.list():
            st.exports.unexport(exp.volume_id)
        for vol in st.volumes.list():
            st.volumes.delete(vol.id, force=True)
        st.close()


def sessions() -> str:
    return subprocess.run(["iscsiadm", "-m", "session"], capture_output=True, text=True, check=False).stdout


def test_lio_export_and_os_brick_attach(gst: storage.Storage) -> None:
    vol = gst.volumes.create("lio1", "32M")
    exp = gst.exports.export("lio1", initiators=[INITIATOR])
    assert exp.driver == "lio" and exp.lun == 0
    info = gst.exports.connection_info("lio1", include_secret=True)

    att = attach.attach(info)
    try:
        assert att.protocol == "ISCSI" and att.path.startswith("/dev/sd"), att
        fd = os.open(att.path, os.O_RDWR)
        try:
            assert os.lseek(fd, 0, os.SEEK_END) == 32 * MiB
            payload = os.urandom(MiB)
            os.pwrite(fd, payload, 5 * MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
        backing = Path(gst.host.volume_backend(vol.pool).volume_path(vol.id))
        with open(backing, "rb") as f:
            f.seek(5 * MiB)
            assert f.read(MiB) == payload
        assert exp.target_iqn in sessions()
        gst.volumes.extend("lio1", "48M")  # iblock follows the loop device's size
        assert gst.exports.on_extend("lio1").size_bytes == 48 * MiB
        assert attach.refresh_size(info, att.path) == 48 * MiB
    finally:
        attach.detach(info, att.device_info)
    assert exp.target_iqn not in sessions()
    assert not Path(att.path).exists() or not Path(f"/sys/block/{Path(att.path).name}").exists()


def test_wrong_chap_secret_is_refused(gst: storage.Storage) -> None:
    gst.volumes.create("lio2", "8M")
    gst.exports.export("lio2")
    info = {**gst.exports.connection_info("lio2", include_secret=True), "auth_password": "Wrong-Secret-99"}
    with pytest.raises(BackendError) as err:
        attach.attach(info)
    assert "Wrong-Secret-99" not in str(err.value)
    assert gst.exports.get("lio2").target_iqn not in sessions()


def test_lio_config_survives_a_target_reset(gst: storage.Storage) -> None:
    import rtslib_fb

    gst.volumes.create("lio3", "8M")
    exp = gst.exports.export("lio3", initiators=[INITIATOR])
    rtslib_fb.RTSRoot().clear_existing(confirm=True)  # what a reboot does to the kernel target
    assert not list(rtslib_fb.RTSRoot().targets)
    fresh = type(gst.host.export_backend)(gst.host.export_backend.options)
    fresh.ensure_running()  # restores the saved configuration
    assert [t.target_iqn for t in fresh.list_exports()] == [exp.target_iqn]
    assert gst.exports.reconcile().unchanged == ["lio3"]
    info = gst.exports.connection_info("lio3", include_secret=True)
    att = attach.attach(info)
    try:
        assert att.path.startswith("/dev/sd")
    finally:
        attach.detach(info, att.device_info)
    saved = gst.host.export_backend.save_file
    assert oct(saved.stat().st_mode & 0o777) == oct(0o600)
