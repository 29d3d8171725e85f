"""A backup or restore killed mid-way leaves no status that refuses the next command (issue 15).

A child process runs the real operation and dies (os._exit) at the worst point: right after
its snapshot was taken (the volume still `snapshotting`), or in the middle of a restore into a
new volume (`restoring-backup`). The next ordinary command settles the status; no
`storagectl check --repair`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import storage
from storage.cli.main import main
from storage.domain import VolumeStatus
from tests.backup_helpers import MIB, same_bytes

CHILD = r'''
import os, sys
import storage
import backends.volume.file.driver as fv
from storage.backup import ops
point, cfg = sys.argv[1], sys.argv[2]
if point == "snapshot":
    original = fv.FileVolumeBackend.create_snapshot
    def create_snapshot(self, *args, **kwargs):
        original(self, *args, **kwargs)
        os._exit(17)  # killed: the snapshot exists, the catalog still says snapshotting / creating
    fv.FileVolumeBackend.create_snapshot = create_snapshot
    with storage.open(cfg) as st:
        st.backups.create("v")
elif point == "restore":
    def restore_to_fd(*args, **kwargs):
        os._exit(17)  # killed while writing into the new volume
    ops.restore_to_fd = restore_to_fd
    with storage.open(cfg) as st:
        st.backups.restore(sys.argv[3], new_volume_name="r1")
else:
    original_create = fv.FileVolumeBackend.create_volume
    def create_volume(self, *args, **kwargs):
        original_create(self, *args, **kwargs)
        os._exit(17)  # killed right after the new volume's image exists, before any byte is restored
    fv.FileVolumeBackend.create_volume = create_volume
    with storage.open(cfg) as st:
        st.backups.restore(sys.argv[3], new_volume_name="r2")
'''


def _killed(config: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, args[0], str(config), *args[1:]], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 17, proc.stderr


def _raw_status(st: storage.Storage, name: str) -> str | None:
    from sqlalchemy import select

    from storage.catalog.volumes import VolumeRow

    with st.catalog.session() as s:
        return s.scalar(select(VolumeRow.status).where(VolumeRow.name == name))


@pytest.fixture
def cfg(data_dir: Path, tmp_path: Path) -> Path:
    path = data_dir / "settle.toml"
    path.write_text(f'data_dir = "{data_dir}"\n[pools.default]\ndriver = "file"\npath = "{tmp_path / "pool"}"\n')
    return path


def test_a_backup_killed_while_snapshotting_does_not_refuse_the_rerun(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with storage.open(cfg) as st:
        vol = st.volumes.create("v", 4 * MIB)
        with st.host.open_volume("default", vol.id) as path:
            Path(path).write_bytes(b"data" * MIB)
        # attached, so the backup goes through a snapshot (a detached volume on a pool without
        # changed ranges is read in place, held backing-up, and takes no snapshot)
        st.volumes.attach("v")
        _killed(cfg, "snapshot")
        assert _raw_status(st, "v") == "snapshotting"
        # the rerun, through the CLI as an operator types it: not refused (it was exit 4)
        code = main(["-c", str(cfg), "backup", "create", "v", "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        backup = json.loads(out)
        assert backup["status"] == "available"
        assert st.volumes.get("v").status is VolumeStatus.IN_USE
        assert st.snapshots.list(volume="v") == []  # the killed run's snapshot was settled, then retired
        restored = Path(cfg.parent / "restored.img")
        st.backups.restore(backup["id"], to_path=str(restored))
        st.volumes.detach("v")
        with st.host.open_volume("default", vol.id) as path:
            assert same_bytes(restored, path)


def test_a_restore_killed_into_a_new_volume_is_settled(cfg: Path) -> None:
    with storage.open(cfg) as st:
        vol = st.volumes.create("v", 4 * MIB)
        with st.host.open_volume("default", vol.id) as path:
            Path(path).write_bytes(b"x" * 2 * MIB)
            source = path
        backup = st.backups.create("v")
        _killed(cfg, "restore", backup.id)
        assert _raw_status(st, "r1") == "restoring-backup"
        statuses = {v.name: v.status for v in st.volumes.list()}
        assert statuses["r1"] is VolumeStatus.ERROR  # partial data: settled, not left restoring
        st.volumes.delete("r1")  # an ordinary delete, no reset-status or --force
        # killed before a byte was written: never an empty volume that looks restored
        _killed(cfg, "create", backup.id)
        assert _raw_status(st, "r2") == "restoring-backup"
        assert st.volumes.get("r2").status is VolumeStatus.ERROR
        st.volumes.delete("r2")
        st.backups.restore(backup.id, new_volume_name="r1")
        r1 = st.volumes.get("r1")
        with st.host.open_volume("default", r1.id) as path:
            assert same_bytes(path, source)


def test_a_volume_born_restoring_for_a_later_job_is_filled_then_available(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cinder's restore creates the volume first and restores into it from a job: the volume is
    restoring-backup (owned by this process) from birth, so a crash in between can never leave an
    empty `available` one; the job fills it and only then makes it available."""
    with storage.open(cfg) as st:
        vol = st.volumes.create("v", 4 * MIB)
        with st.host.open_volume("default", vol.id) as path:
            Path(path).write_bytes(b"y" * 3 * MIB)
            source = path
        backup = st.backups.create("v")
        target = st.volumes.create("cinder-r", 8 * MIB, restoring=True)
        assert target.status is VolumeStatus.RESTORING_BACKUP
        assert st.volumes.held_here(target.id)
        with pytest.raises(Exception):
            st.volumes.attach("cinder-r")  # not usable while it is being restored
        st.backups.restore(backup.id, to_volume=target.id)
        assert st.volumes.get("cinder-r").status is VolumeStatus.AVAILABLE
        with st.host.open_volume("default", target.id) as path:
            assert Path(path).read_bytes()[: 3 * MIB] == Path(source).read_bytes()[: 3 * MIB]
        # a failing fill leaves the volume in `error` (the client knows its id), not available, not gone
        from storage.backup import ops
        from storage.errors import BackendError

        def failing_write(*args: object, **kwargs: object) -> None:
            raise BackendError("the store went away mid-restore")

        broken = st.volumes.create("cinder-r2", 8 * MIB, restoring=True)
        monkeypatch.setattr(ops, "restore_to_fd", failing_write)
        with pytest.raises(BackendError):
            st.backups.restore(backup.id, to_volume=broken.id)
        assert st.volumes.get("cinder-r2").status is VolumeStatus.ERROR
