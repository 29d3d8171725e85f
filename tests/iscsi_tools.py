"""Host-side iSCSI initiators for tests: libiscsi's iscsi-inq/readcapacity16 and qemu-io.

The CHAP secret goes to libiscsi in the URL (its only way) and to qemu through a 0600 secret
file, never into a log of ours.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DEFAULT_INITIATOR = "iqn.2026-11.test.storage:initiator"


@dataclass
class IscsiResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def iscsi_url(portal: str, iqn: str, lun: int, user: str | None = None, password: str | None = None) -> str:
    cred = ""
    if user:
        cred = quote(user, safe="") + (("%" + quote(password, safe="")) if password else "") + "@"
    return f"iscsi://{cred}{portal}/{iqn}/{lun}"


def _run(argv: list[str], timeout: float = 60) -> IscsiResult:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return IscsiResult(proc.returncode, proc.stdout, proc.stderr)


def inquiry(url: str, initiator: str = DEFAULT_INITIATOR, page: int | None = None) -> IscsiResult:
    argv = ["iscsi-inq", "-i", initiator]
    if page is not None:
        argv += ["-e", "1", "-c", str(page)]
    return _run(argv + [url])


def unit_serial(url: str, initiator: str = DEFAULT_INITIATOR) -> str:
    res = inquiry(url, initiator, page=0x80)
    assert res.ok, res.stderr
    m = re.search(r"Unit Serial Number:\[\s*(\S*)\]", res.stdout)
    assert m, res.stdout
    return m.group(1)


def capacity(url: str, initiator: str = DEFAULT_INITIATOR) -> IscsiResult:
    return _run(["iscsi-readcapacity16", "-i", initiator, url])


def total_size(url: str, initiator: str = DEFAULT_INITIATOR) -> int:
    res = capacity(url, initiator)
    assert res.ok, res.stderr
    m = re.search(r"Total size:(\d+)", res.stdout)
    assert m, res.stdout
    return int(m.group(1))


def qemu_io(
    portal: str,
    iqn: str,
    lun: int,
    commands: list[str],
    *,
    user: str | None = None,
    password: str | None = None,
    initiator: str = DEFAULT_INITIATOR,
) -> IscsiResult:
    """Run qemu-io commands (e.g. 'write -P 0xab 0 64k') against an iSCSI LUN."""
    opts = [
        "driver=raw", "file.driver=iscsi", "file.transport=tcp", f"file.portal={portal}",
        f"file.target={iqn}", f"file.lun={lun}", f"file.initiator-name={initiator}",
    ]  # fmt: skip
    argv = ["qemu-io"]
    with tempfile.TemporaryDirectory() as tmp:
        if user:
            secret = Path(tmp) / "chap"
            secret.touch(mode=0o600)
            secret.write_text(password or "")
            argv += ["--object", f"secret,id=chap0,file={secret}"]
            opts += [f"file.user={user}", "file.password-secret=chap0"]
        argv += ["--image-opts"]
        for cmd in commands:
            argv += ["-c", cmd]
        argv.append(",".join(opts))
        return _run(argv)
