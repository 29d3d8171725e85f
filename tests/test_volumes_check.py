"""storage.volumes.check / `storagectl check`: crashes between a backend step and the catalog update,
orphans, missing data, stale and lost loop devices. Crashes are real: a child process does the
backend step and dies with os._exit before the catalog update."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import storage
from storage.volumes.check import is_stuck, owner_is_dead, settle_volume
from storage.domain import VolumeStatus
from tests.volume_helpers import MIB, loop_hygiene, requires_loop  # noqa: F401

pytestmark = [pytest.mark.loop, requires_loop, pytest.mark.both_catalogs]

CRASH = r'''
import os, sys, storage
from storage.catalog.base import new_id, utcnow
from storage.catalog.volumes import VolumeRow, cas_volume_status, this_owner
from storage.domain import VolumeStatus as V
step, cfg = sys.argv[1], sys.argv[2]
st = storage.open(cfg)
backend = st.host.volume_backend("default")
if step == "create":
    vid = new_id()
    with st.catalog.session() as s:
        s.add(VolumeRow(id=vid, name="crashed-create", size_bytes=4 << 20, pool="default", status="creating",
                        labels={}, task_owner=this_owner(), created_at=utcnow(), updated_at=utcnow()))
    backend.create_volume(vid, 4 << 20)
else:
    vid = st.volumes.get(sys.argv[3]).id
    target = {"delete": V.DELETING, "attach": V.ATTACHING, "extend": V.EXTENDING}[step]
    with st.catalog.session() as s:
        cas_volume_status(s, vid, target)
    if step == "delete":
        backend.delete_volume(vid)
    elif step == "attach":
        backend.attach(vid)
    else:
        backend.extend_volume(vid, 8 << 20)
os._exit(17)  # the crash: the catalog update never happens
'''


def crash(config_file: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH, args[0], str(config_file), *args[1:]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr


def kinds(report) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(f.kind for f in report.findings)


def _raw_status(st: storage.Storage, name: str) -> str:
    """The catalog's status without going through VolumeService (whose reads settle dead owners)."""
    from sqlalchemy import select

    from storage.catalog.volumes import VolumeRow

    with st.catalog.session() as s:
        return str(s.scalar(select(VolumeRow.status).where(VolumeRow.name == name)))


def test_crash_during_create_is_found_and_repaired(st: storage.Storage, config_file: Path, loop_hygiene: Path) -> None:
    crash(config_file, "create")
    assert _raw_status(st, "crashed-create") == "creating"
    report = st.check()
    assert kinds(report) == ["stuck_volume"]
    assert "no longer running" in report.findings[0].detail and not report.findings[0].repaired
    assert _raw_status(st, "crashed-create") == "creating"  # report only
    fixed = st.check(repair=True)
    assert fixed.findings[0].repaired
    assert st.volumes.get("crashed-create").status is VolumeStatus.AVAILABLE
    assert st.check().clean


def test_the_next_command_settles_a_dead_owners_status(st: storage.Storage, config_file: Path,
                                                       loop_hygiene: Path) -> None:
    """No `check --repair` needed: reading the volume settles what a killed process left."""
    crash(config_file, "create")
    st.volumes.create("e", "4M")
    crash(config_file, "extend", "e")
    assert _raw_status(st, "crashed-create") == "creating" and _raw_status(st, "e") == "extending"
    assert st.volumes.get("crashed-create").status is VolumeStatus.AVAILABLE
    assert {v.name: v.status for v in st.volumes.list()}["e"] is VolumeStatus.AVAILABLE
    assert st.volumes.get("e").size_bytes == 8 * MIB  # settled from what the backend holds
    st.volumes.extend("e", "12M")  # and the next operation is not refused
    assert st.check().clean


def test_crash_during_delete_attach_extend(st: storage.Storage, config_file: Path, loop_hygiene: Path) -> None:
    for name in ("d", "a", "e"):
        st.volumes.create(name, "4M")
    crash(config_file, "delete", "d")
    crash(config_file, "attach", "a")
    crash(config_file, "extend", "e")
    report = st.check()
    assert kinds(report) == ["stuck_volume"] * 3, report
    st.check(repair=True)
    names = {v.name: v for v in st.volumes.list()}
    assert "d" not in names  # the delete was finished
    assert names["a"].status is VolumeStatus.IN_USE and names["a"].attached_device  # the attachment was recorded
    assert names["e"].status is VolumeStatus.AVAILABLE and names["e"].size_bytes == 8 * MIB
    assert st.check().clean
    st.volumes.detach("a")


def test_live_operation_is_not_stuck(st: storage.Storage) -> None:
    """A transitional status owned by a running process is only reported once it is stale."""
    from storage.catalog.volumes import cas_volume_status

    vol = st.volumes.create("busy", "1M")
    with st.catalog.session() as s:
        cas_volume_status(s, vol.id, VolumeStatus.EXTENDING)  # owned by this (live) process
    assert st.check().clean
    assert kinds(st.check(stale_after=0)) == ["stuck_volume"]


def test_orphans_missing_data_stale_and_lost_devices(st: storage.Storage, loop_hygiene: Path) -> None:
    backend = st.host.volume_backend("default")
    orphan = str(uuid.uuid4())
    backend.create_volume(orphan, MIB)  # data no catalog volume owns
    stale = subprocess.run(["losetup", "--find", "--show", str(backend.volume_path(orphan))],  # type: ignore[attr-defined]
                           capture_output=True, text=True, check=True).stdout.strip()
    gone = st.volumes.create("gone", "1M")
    os.unlink(backend.volume_path(gone.id))  # type: ignore[attr-defined]
    lost = st.volumes.attach(st.volumes.create("lost", "1M").name)
    subprocess.run(["losetup", "--detach", lost.attached_device or ""], check=True)  # e.g. a reboot
    report = st.check()
    assert kinds(report) == ["lost_attachment", "missing_data", "orphan_volume", "stale_device"], report
    assert next(f for f in report.findings if f.kind == "stale_device").name == stale
    repaired = st.check(repair=True)
    assert all(f.repaired for f in repaired.findings), repaired
    assert not backend.volume_path(orphan).exists()  # type: ignore[attr-defined]
    assert st.volumes.get("gone").status is VolumeStatus.ERROR
    assert st.volumes.get("lost").status is VolumeStatus.AVAILABLE and st.volumes.get("lost").attached_device is None
    after = st.check()
    assert kinds(after) == ["missing_data"] and after.findings[0].repair.startswith("none")


def test_check_cli_reports_then_repairs(config_file: Path, loop_hygiene: Path) -> None:
    import json

    crash(config_file, "create")
    env = {**os.environ, "STORAGE_CONFIG": str(config_file)}
    exe = Path(sys.executable).parent / "storagectl"
    out = subprocess.run([str(exe), "check", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 4, out.stderr
    assert [f["kind"] for f in json.loads(out.stdout)["findings"]] == ["stuck_volume"]
    fixed = subprocess.run([str(exe), "check", "--repair"], capture_output=True, text=True, env=env, timeout=120)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    again = subprocess.run([str(exe), "check"], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "clean" in again.stdout


def test_pure_decisions() -> None:
    from datetime import UTC, datetime, timedelta

    assert owner_is_dead("h:123", "h", lambda pid: False)
    assert not owner_is_dead("h:123", "h", lambda pid: True)
    assert not owner_is_dead("other:123", "h", lambda pid: False)  # cannot tell for another host
    now = datetime.now(UTC)
    assert is_stuck(True, "other:1", now - timedelta(hours=2), now, 3600, "h", lambda p: True)
    assert not is_stuck(False, None, now - timedelta(days=9), now, 3600, "h", lambda p: False)
    assert settle_volume(VolumeStatus.CREATING, False, False) == ("drop_row", None)
    assert settle_volume(VolumeStatus.DETACHING, True, False) == ("set", VolumeStatus.AVAILABLE)
    assert settle_volume(VolumeStatus.DETACHING, True, True) == ("set", VolumeStatus.IN_USE)
    assert settle_volume(VolumeStatus.RESTORING_BACKUP, True, False) == ("set", VolumeStatus.ERROR)
    assert settle_volume(VolumeStatus.DELETING, False, False) == ("finish_delete", None)


def test_check_on_one_host_leaves_another_hosts_volumes_alone(st: storage.Storage, tmp_path: Path) -> None:
    """Two hosts, one catalog, both with a pool named default: `check --repair` on the second host
    neither calls the first host's volume (and snapshot) missing nor touches them; its own volume
    whose file is gone is still found."""
    here = st.volumes.create("on-first-host", "1M")
    st.snapshots.create("on-first-host", "snap1")
    other_dir = tmp_path / "second-host"
    other_dir.mkdir()
    cfg = other_dir / "storage.toml"
    cfg.write_text(f'host_name = "second-host"\ndata_dir = "{other_dir}"\n[catalog]\nurl = "{st.settings.catalog.url}"\n')
    with storage.open(cfg) as second:
        mine = second.volumes.create("on-second-host", "1M")
        assert mine.host == "second-host" and here.host == st.settings.host_name != "second-host"
        os.unlink(second.host.volume_backend("default").volume_path(mine.id))  # type: ignore[attr-defined]
        report = second.check(repair=True)
        assert [(f.kind, f.name) for f in report.findings] == [("missing_data", "on-second-host")], report
    assert _raw_status(st, "on-first-host") == "available"
    assert st.snapshots.get("snap1").status.value == "available"
    assert st.check().clean
