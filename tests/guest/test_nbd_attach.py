"""`backup attach` for real (the guest kernel has nbd; about 3 minutes of guest time under TCG): a backup of an ext4 image becomes a
read-only /dev/nbdN, mounts, a file reads back, and `backup detach` disconnects it and stops
its serve process."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import subprocess
import sys
from pathlib import Path

import storage


def cli(config: Path, *args: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run([sys.executable, "-m", "storage.cli.main", "-c", str(config), "backup", *args, "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_attach_mount_read_detach(tmp_path: Path) -> None:
    # The file object store needs user xattrs: the guest's /tmp is a 6.1 tmpfs without them.
    data = Path(tempfile.mkdtemp(prefix="nbd-", dir="/var/tmp"))
    config = data / "storage.toml"
    config.write_text(f'data_dir = "{data}"\n')
    tree = tmp_path / "tree"
    tree.mkdir()
    payload = os.urandom(300_000)
    (tree / "hello.bin").write_bytes(payload)
    image = tmp_path / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "32M"], check=True)
    with storage.open(config) as st:
        backup = st.backups.create(str(image))

    att = cli(config, "attach", backup.id)
    device = att["device"]
    try:
        assert device.startswith("/dev/nbd") and Path(device).is_block_device()
        assert subprocess.run(["blockdev", "--getro", device], capture_output=True, text=True).stdout.strip() == "1"
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run(["mount", "-o", "ro,noload", device, str(mnt)], check=True)
        try:
            assert (mnt / "hello.bin").read_bytes() == payload
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        done = cli(config, "detach", device)
    assert done == {"detached": device, "backup_id": backup.id}
    assert not Path(f"/sys/block/{Path(device).name}/pid").exists()
    assert not Path(f"/proc/{att['serve_pid']}").exists() or "Z" in Path(f"/proc/{att['serve_pid']}/stat").read_text().split()[2]
    assert not list((data / "run" / "nbd").glob("*.json"))
    shutil.rmtree(data, ignore_errors=True)
