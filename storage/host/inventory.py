"""What block devices this host has, the way admins know them: lsblk, losetup, pvs/vgs.

Each source is gathered independently; a missing tool is reported in plain words instead of
failing the whole report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from pydantic import BaseModel, Field

SOURCES: dict[str, list[str]] = {
    "lsblk": ["lsblk", "--json", "--bytes", "--output", "NAME,PATH,TYPE,SIZE,RO,MOUNTPOINT,FSTYPE,MODEL"],
    "losetup": ["losetup", "--json", "--list"],
    "pvs": ["pvs", "--reportformat", "json", "--units", "b", "--nosuffix"],
    "vgs": ["vgs", "--reportformat", "json", "--units", "b", "--nosuffix"],
}


class SourceReport(BaseModel):
    tool: str
    available: bool
    data: Any = None
    message: str | None = None  # why there is no data


class HostDevices(BaseModel):
    lsblk: SourceReport
    losetup: SourceReport
    lvm: dict[str, SourceReport] = Field(default_factory=dict)
    lvm_available: bool = False
    lvm_message: str | None = None


def gather(name: str, cmd: list[str], timeout: float = 30) -> SourceReport:
    if shutil.which(cmd[0]) is None:
        return SourceReport(tool=cmd[0], available=False, message=f"{cmd[0]} is not installed on this host")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return SourceReport(tool=cmd[0], available=True, message=f"{' '.join(cmd)} timed out after {timeout:.0f} s")
    if proc.returncode != 0:
        return SourceReport(
            tool=cmd[0], available=True,
            message=f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[:500]}",
        )
    return SourceReport(tool=cmd[0], available=True, data=parse_json_output(proc.stdout))


def parse_json_output(text: str) -> Any:
    """JSON from a tool; empty output (losetup with no devices) is an empty object."""
    text = text.strip()
    return json.loads(text) if text else {}


def host_devices() -> HostDevices:
    lvm_tools = shutil.which("pvs") is not None and shutil.which("vgs") is not None
    report = HostDevices(
        lsblk=gather("lsblk", SOURCES["lsblk"]),
        losetup=gather("losetup", SOURCES["losetup"]),
        lvm_available=lvm_tools,
    )
    if lvm_tools:
        report.lvm = {name: gather(name, SOURCES[name]) for name in ("pvs", "vgs")}
    else:
        report.lvm_message = "LVM tools (pvs, vgs from lvm2) are not installed on this host; no LVM report"
    return report
