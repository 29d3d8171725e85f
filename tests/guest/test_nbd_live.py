"""Live restore with the guest kernel's NBD client (about 3 minutes of guest time under TCG):
`backup restore --new-volume X --live` serves the new volume on a Unix socket, `qemu-nbd --connect`
makes it /dev/nbd0 (read-write), the source reads back through the block device while the copy
runs, `dd` writes at several offsets, and once the copy ends the volume file is backup + writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import storage

MIB = 1024 * 1024
SIZE = 8 * MIB
# (offset, length, byte): inside a chunk, a whole chunk, across a chunk boundary
WRITES = [(6 * MIB + 4096, 4096, 0xA1), (7 * MIB, MIB, 0xB2), (2 * MIB - 4096, 8192, 0xC3)]


def dd_write(device: str, offset: int, length: int, byte: int, tmp: Path) -> None:
    block = tmp / f"w{offset}"
    block.write_bytes(bytes([byte]) * length)
    subprocess.run(["dd", f"if={block}", f"of={device}", "bs=4096", f"seek={offset // 4096}", "oflag=direct",
                    "conv=notrunc,fsync", "status=none"], check=True)


def test_live_restore_through_dev_nbd0(tmp_path: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="live-", dir="/var/tmp"))  # the guest's /tmp has no user xattrs
    config = data / "storage.toml"
    config.write_text(f'data_dir = "{data}"\n')
    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(4 * MIB) + bytes(2 * MIB) + os.urandom(2 * MIB))
    with storage.open(config) as st:
        backup = st.backups.create(str(src))
    sock = data / "live.sock"
    proc = subprocess.Popen([sys.executable, "-m", "storage.cli.main", "-c", str(config), "backup", "restore", backup.id,
                             "--new-volume", "live", "--live", "--socket", str(sock), "--copy-rate", "128K",
                             "--until-restored", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # the first JSON line with the URI (anything before it is shown on failure)
        seen.append(line)
        if line.startswith("{") and '"uri"' in line:
            break
    assert seen and '"uri"' in seen[-1], (seen, proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
    info = json.loads(seen[-1])
    device = "/dev/nbd0"
    subprocess.run(["qemu-nbd", f"--connect={device}", "--format=raw", "--cache=none", info["uri"]], check=True, timeout=120)
    try:
        deadline = time.monotonic() + 60
        while Path("/sys/block/nbd0/size").read_text().strip() == "0":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with open(device, "rb", buffering=0) as f:  # read while the copy runs: fetched on demand
            f.seek(5 * MIB - 4096)
            assert f.read(MIB) == src.read_bytes()[5 * MIB - 4096: 6 * MIB - 4096]
        for off, length, byte in WRITES:
            dd_write(device, off, length, byte, tmp_path)
        with storage.open(config) as st:
            assert st.volumes.get("live").status.value == "restoring-backup"  # the writes landed during the copy
    finally:
        subprocess.run(["qemu-nbd", "--disconnect", device], timeout=120)
    rest, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert json.loads(rest.splitlines()[-1])["status"] == "available"
    want = bytearray(src.read_bytes())
    for off, length, byte in WRITES:
        want[off: off + length] = bytes([byte]) * length
    with storage.open(config) as st:
        vol = st.volumes.get("live")
        assert vol.status.value == "available"
        with st.host.open_volume(vol.pool, vol.id) as path:
            assert Path(path).read_bytes()[:SIZE] == bytes(want)
    shutil.rmtree(data, ignore_errors=True)
