"""A restore into a full filesystem ends in InsufficientCapacity (exit 6) and leaves nothing behind (issue 15).

The small filesystem is a real tmpfs mounted with size= (root only): once full, write() fails
with ENOSPC exactly as on a full disk or an overcommitted pool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.cli.main import main
from storage.errors import InsufficientCapacity
from tests.backup_helpers import MIB, make_image, same_bytes

SMALL = 16 * MIB


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root and mount(8)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(mnt)], check=True, timeout=30)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


def _used(path: Path) -> int:
    vfs = os.statvfs(path)
    return (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize


@pytest.fixture
def cfg(data_dir: Path, small_fs: Path) -> Path:
    path = data_dir / "space.toml"
    path.write_text(
        f'data_dir = "{data_dir}"\n[pools.default]\ndriver = "file"\npath = "{data_dir / "pool"}"\n'
        f'[pools.small]\ndriver = "file"\npath = "{small_fs / "pool"}"\novercommit_ratio = 4\n'
    )
    return path


def test_restore_into_a_full_filesystem_fails_cleanly(cfg: Path, small_fs: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    image = make_image(tmp_path / "img", 32 * MIB, seed=171)  # random: does not fit 16 MiB
    with storage.open(cfg) as st:
        backup = st.backups.create(str(image))
        baseline = _used(small_fs)

        # a new volume on an overcommitted pool: accepted (32 MiB <= 4 x 16 MiB), then the pool fills
        with pytest.raises(InsufficientCapacity, match="ran out of space"):
            st.backups.restore(backup.id, new_volume_name="big", pool="small")
        assert [v.name for v in st.volumes.list()] == []
        assert list((small_fs / "pool" / "volumes").glob("*")) == []
        assert _used(small_fs) <= baseline + MIB

        # --to-path through the CLI: exit 6, a JSON error, no partial file
        target = small_fs / "restored.img"
        code = main(["-c", str(cfg), "backup", "restore", backup.id, "--to-path", str(target), "--json"])
        out, err = capsys.readouterr()
        assert code == 6, (out, err)
        doc = json.loads(out or err)
        assert doc["error"]["code"] == "insufficient_capacity" and "ran out of space" in doc["error"]["message"]
        assert "Traceback" not in out + err
        assert not target.exists() and _used(small_fs) <= baseline + MIB

        # an existing file is cut back to its old size (the restore only grew it)
        existing = small_fs / "existing.img"
        existing.write_bytes(b"x" * 4096)
        with pytest.raises(InsufficientCapacity):
            st.backups.restore(backup.id, to_path=str(existing))
        assert existing.stat().st_size == 4096
        existing.unlink()

        # where it fits, the same backup restores byte-identical
        fits = make_image(tmp_path / "small-img", 4 * MIB, seed=172)
        small_backup = st.backups.create(str(fits))
        st.backups.restore(small_backup.id, to_path=str(small_fs / "ok.img"))
        assert same_bytes(small_fs / "ok.img", fits)
