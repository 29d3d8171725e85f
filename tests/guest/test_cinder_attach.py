"""Inside the QEMU guest tier: attach the way a compute host does it (what `storagectl attach
VOLUME --api` runs: storage.host.compute), against a real `storagectl serve` exporting through
LIO, with os-brick's connector properties of the guest and its ISCSIConnector over the real
open-iscsi (iscsid, iscsi_tcp). Data written through the initiator's /dev/sdX is read back from
the volume's backing file. The CLI around it (arguments, rollback, exit codes) is tested on the
host (tests/test_cinder_connections.py); here it would cost two more Python starts and os-brick
imports under TCG.

Takes about 7 minutes under TCG (measured 2026-11-30, shared host: 400 s in the guest, 516 s
with boot and pytest start): the server's start 158 s (FastAPI, SQLAlchemy imports), the
connector 60 s (the os-brick import), attach 99 s, detach 25 s (timings printed with -s)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import storage
from tests.guest.test_lio_export import INITIATOR, iscsid, sessions  # noqa: F401 - fixture

MiB = 1024 * 1024
STORAGECTL = [sys.executable, "-m", "storage.cli.main"]

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(
        not Path("/sys/kernel/config").is_dir() or shutil.which("iscsiadm") is None,
        reason="needs the QEMU guest tier: configfs with LIO and open-iscsi (iscsiadm, iscsid, iscsi_tcp)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, iscsid) -> Iterator[tuple[storage.Storage, str, Path]]:  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    cfg = data / "storage.toml"
    cfg.write_text(f'data_dir = "{data}"\n[export]\ndriver = "lio"\nportal = "127.0.0.1:3260"\n')
    st = storage.open(cfg)
    token = tmp_path / "token"
    token.write_text(st.tokens.create("operator", name="compute")[1])
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([*STORAGECTL, "-c", str(cfg), "serve", "--port", str(port), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # TCG: a FastAPI start takes tens of seconds
    t0 = time.monotonic()
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    print(f"server up in {time.monotonic() - t0:.1f} s")
    try:
        yield st, url, token
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        for exp in st.exports.list():
            st.exports.unexport(exp.volume_id)
        for vol in st.volumes.list():
            st.volumes.delete(vol.id, force=True)
        st.close()


def test_attach_from_a_compute_host_through_the_api(served, tmp_path: Path) -> None:
    from storage.host import compute

    st, url, token = served
    vol = st.volumes.create("nova1", "32M")
    client = compute.CinderClient(f"{url}/v3", token.read_text())
    t0 = time.monotonic()
    connector = compute.connector_from_host(client.url)
    assert connector["initiator"] == INITIATOR and connector["ip"] == "127.0.0.1"
    t1 = time.monotonic()
    out = compute.attach_volume(client, "nova1", connector, state_dir=tmp_path / "state")
    t2 = time.monotonic()
    print(f"connector {t1 - t0:.1f} s, attach {t2 - t1:.1f} s")
    device = out["path"]
    assert out["volume_id"] == vol.id and device.startswith("/dev/sd"), out
    assert st.volumes.get("nova1").status.value == "in-use"
    exp = st.exports.get("nova1")
    assert exp.origin == "connection" and exp.initiators == [INITIATOR] and exp.target_iqn in sessions()
    state = (tmp_path / "state" / f"{vol.id}.json").read_text()
    assert st.exports.secrets.get(vol.id) not in state  # detach needs no secret
    (att,) = st.connections.attachments()[vol.id]
    assert att.mountpoint == device and att.host_name == socket.gethostname()

    payload = os.urandom(MiB)
    fd = os.open(device, os.O_RDWR)
    try:
        assert os.lseek(fd, 0, os.SEEK_END) == 32 * MiB
        os.pwrite(fd, payload, 3 * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(st.host.volume_backend(vol.pool).volume_path(vol.id), "rb") as f:
        f.seek(3 * MiB)
        assert f.read(MiB) == payload

    t3 = time.monotonic()
    assert compute.detach_volume(client, "nova1", state_dir=tmp_path / "state") == {"volume_id": vol.id, "detached": device}
    print(f"detach {time.monotonic() - t3:.1f} s")
    assert exp.target_iqn not in sessions()
    assert st.volumes.get("nova1").status.value == "available" and st.exports.list() == []
    assert st.connections.attachments() == {} and not (tmp_path / "state" / f"{vol.id}.json").exists()
