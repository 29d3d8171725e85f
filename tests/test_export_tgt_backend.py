"""TgtExportBackend against a real tgtd on 127.0.0.1 with libiscsi and qemu initiators."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from backends.export.base import ChapCredentials, ExportSpec, validate_backing_device
from backends.export.tgt.daemon import redact_argv
from backends.export.tgt.driver import TgtExportBackend
from storage.errors import BackendError, InvalidInput, NotFound
from tests import iscsi_tools as it

pytestmark = [pytest.mark.tgt, pytest.mark.loop]

MiB = 1024 * 1024
CHAP = ChapCredentials("user-backend", "Secret-0123456")  # 14 characters
IQN = "iqn.2026-11.test.storage:volume-backend"


def backend_for(tgtd, tmp_path: Path, **extra) -> TgtExportBackend:
    opts = {"portal": tgtd.portal, "control_port": tgtd.control_port, "state_dir": str(tmp_path / "state")}
    opts.update(extra)
    return TgtExportBackend(opts)


def spec_for(dev: str, **kw) -> ExportSpec:
    base = dict(key="vol-1", device_path=dev, target_iqn=IQN, lun=1, chap=CHAP, serial="0123456789abcdef")
    base.update(kw)
    return ExportSpec(**base)


def url(tgtd, iqn: str = IQN, password: str | None = CHAP.password, user: str | None = CHAP.username) -> str:
    return it.iscsi_url(tgtd.portal, iqn, 1, user, password)


def test_export_identity_capacity_and_data(tgtd_clean, tmp_path, loop_device) -> None:
    dev, backing = loop_device(32 * MiB)
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    exported = be.export(spec_for(dev))
    assert exported.luns == {1: dev}

    inq = it.inquiry(url(tgtd_clean))
    assert inq.ok, inq.stderr
    assert "DIRECT_ACCESS" in inq.stdout
    assert it.unit_serial(url(tgtd_clean)) == "0123456789abcdef"
    assert it.total_size(url(tgtd_clean)) == 32 * MiB

    res = it.qemu_io(
        tgtd_clean.portal, IQN, 1, ["write -P 0x5a 1M 256k", "read -P 0x5a 1M 256k"],
        user=CHAP.username, password=CHAP.password,
    )  # fmt: skip
    assert res.ok and "wrote 262144/262144" in res.stdout and "read 262144/262144" in res.stdout, res.stdout + res.stderr
    with open(backing, "rb") as f:
        f.seek(MiB)
        assert f.read(256 * 1024) == b"\x5a" * 256 * 1024
        f.seek(MiB - 1)
        assert f.read(1) == b"\0"

    # Data written to the device is what the initiator reads (pattern check fails otherwise).
    with open(dev, "r+b") as f:
        f.seek(4 * MiB)
        f.write(b"\xc3" * 65536)
        f.flush()
        os.fsync(f.fileno())
    res = it.qemu_io(tgtd_clean.portal, IQN, 1, ["read -P 0xc3 4M 64k"], user=CHAP.username, password=CHAP.password)
    assert "read 65536/65536" in res.stdout and "Pattern verification failed" not in res.stdout, res.stdout
    res = it.qemu_io(tgtd_clean.portal, IQN, 1, ["read -P 0xc3 8M 64k"], user=CHAP.username, password=CHAP.password)
    assert "Pattern verification failed" in res.stdout, res.stdout

    listed = {t.target_iqn: t for t in be.list_exports()}
    assert listed[IQN].luns == {1: dev}
    assert listed[IQN].chap_usernames == (CHAP.username,)
    assert listed[IQN].sizes == {1: 32 * MiB}


def test_chap_right_secret_only(tgtd_clean, tmp_path, loop_device) -> None:
    dev, _ = loop_device(8 * MiB)
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    be.export(spec_for(dev))
    assert it.capacity(url(tgtd_clean)).ok
    wrong = it.capacity(url(tgtd_clean, password="Wrong-01234567"))
    assert not wrong.ok and "Authentication failure" in wrong.stderr, wrong.stderr
    anonymous = it.capacity(url(tgtd_clean, user=None, password=None))
    assert not anonymous.ok
    res = it.qemu_io(tgtd_clean.portal, IQN, 1, ["read 0 4k"], user=CHAP.username, password="Wrong-01234567")
    assert not res.ok and "read 4096/4096" not in res.stdout


def test_initiator_acl(tgtd_clean, tmp_path, loop_device) -> None:
    dev, _ = loop_device(8 * MiB)
    allowed = "iqn.2026-11.test.storage:allowed"
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    be.export(spec_for(dev, initiators=(allowed,)))
    assert it.capacity(url(tgtd_clean), initiator=allowed).ok
    denied = it.capacity(url(tgtd_clean), initiator="iqn.2026-11.test.storage:intruder")
    assert not denied.ok and "Target not found" in denied.stderr, denied.stderr
    assert be.list_exports()[0].initiators == (allowed,)


def test_export_without_chap_is_open_to_all(tgtd_clean, tmp_path, loop_device) -> None:
    dev, _ = loop_device(8 * MiB)
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    be.export(spec_for(dev, chap=None))
    assert it.total_size(url(tgtd_clean, user=None, password=None)) == 8 * MiB


def test_resize_is_visible_to_initiator(tgtd_clean, tmp_path, loop_device) -> None:
    dev, backing = loop_device(16 * MiB)
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    be.export(spec_for(dev))
    assert it.total_size(url(tgtd_clean)) == 16 * MiB
    os.truncate(backing, 48 * MiB)
    subprocess.run(["losetup", "-c", dev], check=True)
    assert be.resize(IQN, 1) == 48 * MiB
    assert it.total_size(url(tgtd_clean)) == 48 * MiB
    assert it.unit_serial(url(tgtd_clean)) == "0123456789abcdef"  # identity kept
    assert be.list_exports()[0].chap_usernames == (CHAP.username,)


def test_unexport_removes_target_and_account(tgtd_clean, tmp_path, loop_device) -> None:
    dev, _ = loop_device(8 * MiB)
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    be.export(spec_for(dev))
    be.unexport(IQN)
    assert be.list_exports() == []
    res = it.capacity(url(tgtd_clean))
    assert not res.ok and "Login Failed" in res.stderr, res.stderr
    out = subprocess.run(
        ["tgtadm", "-C", str(tgtd_clean.control_port), "--lld", "iscsi", "--mode", "account", "--op", "show"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert CHAP.username not in out
    with pytest.raises(NotFound, match="volume-backend"):
        be.unexport(IQN)


def test_export_replaces_same_iqn(tgtd_clean, tmp_path, loop_device) -> None:
    dev1, _ = loop_device(8 * MiB)
    dev2, _ = loop_device(12 * MiB)
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    be.export(spec_for(dev1))
    be.export(spec_for(dev2))
    assert [t.luns for t in be.list_exports()] == [{1: dev2}]
    assert it.total_size(url(tgtd_clean)) == 12 * MiB


def test_backing_device_validation(tgtd_clean, tmp_path, loop_device) -> None:
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    dev, _ = loop_device(8 * MiB)
    subprocess.run(["losetup", "-d", dev], check=True)
    if os.path.exists(dev):  # a detached loop device node: tgt would offer it as a 0-byte LUN
        with pytest.raises(InvalidInput, match="size 0"):
            be.export(spec_for(dev))
    with pytest.raises(NotFound, match="does not exist"):
        be.export(spec_for(str(tmp_path / "missing.img")))
    with pytest.raises(InvalidInput, match="neither a block device nor a regular file"):
        validate_backing_device(str(tmp_path))
    with pytest.raises(InvalidInput, match="LUN 0"):
        be.export(spec_for(str(tmp_path), lun=0))
    assert be.list_exports() == []


def test_errors_never_show_the_chap_secret(tgtd_clean, tmp_path, loop_device) -> None:
    dev, _ = loop_device(8 * MiB)
    be = backend_for(tgtd_clean, tmp_path, manage_daemon=False)
    bad = ChapCredentials("bad user with spaces", "Secret-Leak-99")
    be.adm.run("--mode", "account", "--op", "new", "--user", "dup-user", "--password", bad.password)
    with pytest.raises(BackendError) as err:  # a second account of the same name fails
        be.adm.run("--mode", "account", "--op", "new", "--user", "dup-user", "--password", bad.password)
    assert "dup-user" in str(err.value)
    assert "Secret-Leak-99" not in str(err.value)
    assert "Secret-Leak-99" not in repr(spec_for(dev, chap=bad))
    assert redact_argv(["tgtadm", "--password", "x", "--user", "u"]) == ["tgtadm", "--password", "***", "--user", "u"]


def test_manage_daemon_starts_and_stops_tgtd(own_tgtd, tmp_path, loop_device) -> None:
    dev, _ = loop_device(8 * MiB)
    be = backend_for(own_tgtd, tmp_path)
    with pytest.raises(NotFound):
        be.unexport(IQN)
    be.export(spec_for(dev))  # starts tgtd on its own
    pid = be.daemon.pid()
    assert pid is not None and Path(f"/proc/{pid}").exists()
    assert it.total_size(url(own_tgtd)) == 8 * MiB
    be.stop()
    assert be.list_exports() == []
    assert be.daemon.pid() is None
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", own_tgtd.port)) != 0


def test_portal_in_use_is_a_clear_error_and_listens_nowhere_else(own_tgtd, tmp_path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", own_tgtd.port))
        blocker.listen()
        be = backend_for(own_tgtd, tmp_path)
        with pytest.raises(BackendError, match="could not listen on portal"):
            be.ensure_running()
    assert be.daemon.pid() is None
    assert not be.adm.answering()
