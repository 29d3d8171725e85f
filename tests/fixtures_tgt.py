"""pytest plugin: our own tgtd on 127.0.0.1, loop devices to export, libiscsi/qemu initiators.

The session tgtd has its own control index (``tgtd -C N``) and a free port, so it never
meets a system tgtd. Everything started here is stopped here: targets offline and deleted,
then ``tgtadm --op delete --mode system``; loop devices are detached.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backends.export.tgt.show import parse_accounts, parse_targets

TGT_SOCKET_DIR = Path("/var/run/tgtd")


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tgtadm(control_port: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tgtadm", "-C", str(control_port), "--lld", "iscsi", *args], capture_output=True, text=True, check=check
    )


def tgt_answering(control_port: int) -> bool:
    return tgtadm(control_port, "--mode", "system", "--op", "show", check=False).returncode == 0


def free_control_port() -> int:
    """A tgtd control index nobody uses (no daemon answers, no socket file)."""
    for _ in range(100):
        n = random.randint(2000, 32000)  # tgtd accepts 0-32767
        if not (TGT_SOCKET_DIR / f"socket.{n}").exists() and not tgt_answering(n):
            return n
    raise RuntimeError("no free tgtd control index found")


def remove_all_targets(control_port: int) -> None:
    """Offline and delete every target and account of one tgtd (the clean-stop order)."""
    if not tgt_answering(control_port):
        return
    for target in parse_targets(tgtadm(control_port, "--mode", "target", "--op", "show").stdout):
        tid = str(target.tid)
        tgtadm(control_port, "--mode", "target", "--op", "update", "--tid", tid, "--name", "state", "--value", "offline", check=False)
        tgtadm(control_port, "--mode", "target", "--op", "delete", "--force", "--tid", tid, check=False)
    for account in parse_accounts(tgtadm(control_port, "--mode", "account", "--op", "show").stdout):
        tgtadm(control_port, "--mode", "account", "--op", "delete", "--user", account, check=False)


@dataclass
class Tgtd:
    control_port: int
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def portal(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                ["tgtd", "-f", "-C", str(self.control_port), "--iscsi", f"portal={self.portal}"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while not tgt_answering(self.control_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tgtd did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        remove_all_targets(self.control_port)
        if tgt_answering(self.control_port):
            tgtadm(self.control_port, "--mode", "system", "--op", "delete", check=False)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        for suffix in ("", ".lock"):
            (TGT_SOCKET_DIR / f"socket.{self.control_port}{suffix}").unlink(missing_ok=True)


def require_tools(*names: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("tgtd and loop devices need root")
    missing = [n for n in names if shutil.which(n) is None and shutil.which(n, path="/usr/sbin:/sbin") is None]
    if missing:
        pytest.skip(f"missing tools {', '.join(missing)} (apt packages tgt, libiscsi-bin, qemu-utils)")


@pytest.fixture(scope="session")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    """One tgtd for the session on 127.0.0.1:<free port> with its own control index."""
    require_tools("tgtd", "tgtadm")
    inst = Tgtd(free_control_port(), free_tcp_port(), tmp_path_factory.mktemp("tgtd") / "tgtd.log")
    inst.start()
    try:
        yield inst
    finally:
        inst.stop()


@pytest.fixture
def tgtd_clean(tgtd: Tgtd) -> Iterator[Tgtd]:
    """The session tgtd, emptied of targets and accounts after the test."""
    try:
        yield tgtd
    finally:
        remove_all_targets(tgtd.control_port)


@pytest.fixture
def own_tgtd(tmp_path: Path) -> Iterator[Tgtd]:
    """A control index and port for a tgtd the test starts itself (e.g. to kill it); always stopped."""
    require_tools("tgtd", "tgtadm")
    inst = Tgtd(free_control_port(), free_tcp_port(), tmp_path / "own-tgtd.log")
    try:
        yield inst
    finally:
        # The code under test may have started tgtd itself: find it by its control socket.
        if tgt_answering(inst.control_port):
            remove_all_targets(inst.control_port)
            tgtadm(inst.control_port, "--mode", "system", "--op", "delete", check=False)
            deadline = time.monotonic() + 10
            while tgt_answering(inst.control_port) and time.monotonic() < deadline:
                time.sleep(0.05)
        inst.stop()


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[Callable[[int], tuple[str, Path]]]:
    """Factory: loop_device(size_bytes) -> (/dev/loopN, backing file); detached after the test."""
    require_tools("losetup")
    made: list[str] = []

    def make(size: int) -> tuple[str, Path]:
        backing = tmp_path / f"loop{len(made)}.img"
        with open(backing, "wb") as f:
            f.truncate(size)
        dev = subprocess.run(
            ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
        ).stdout.strip()
        made.append(dev)
        return dev, backing

    try:
        yield make
    finally:
        for dev in made:
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
