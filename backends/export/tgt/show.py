"""Parsing of `tgtadm --mode target --op show` output (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TARGET_RE = re.compile(r"^Target (\d+): (\S+)\s*$")
_KEY_RE = re.compile(r"^\s*([^:]+):\s*(.*)$")


@dataclass
class TgtLun:
    lun: int
    type: str = ""
    serial: str = ""
    scsi_id: str = ""
    size_mb: int = 0  # tgt rounds to decimal megabytes
    backing_path: str | None = None
    backing_type: str = ""
    online: bool = True


@dataclass
class TgtTarget:
    tid: int
    iqn: str
    state: str = ""
    luns: list[TgtLun] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)  # incoming CHAP usernames
    outgoing_accounts: list[str] = field(default_factory=list)
    acl: list[str] = field(default_factory=list)  # initiator names, addresses or ALL
    sessions: list[str] = field(default_factory=list)  # initiator names of the I_T nexuses

    def data_luns(self) -> list[TgtLun]:
        """LUNs that carry data (tgt adds a controller LUN 0 to every target)."""
        return [lun for lun in self.luns if lun.type != "controller"]


def _section_of(line: str) -> str | None:
    stripped = line.strip()
    for name in ("System information", "I_T nexus information", "LUN information", "Account information", "ACL information"):
        if stripped == f"{name}:":
            return name
    return None


def parse_targets(text: str) -> list[TgtTarget]:
    """Parse the target listing; unknown lines are ignored so newer tgt versions still parse."""
    targets: list[TgtTarget] = []
    current: TgtTarget | None = None
    section: str | None = None
    lun: TgtLun | None = None
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = _TARGET_RE.match(raw)
        if m:
            current = TgtTarget(tid=int(m.group(1)), iqn=m.group(2))
            targets.append(current)
            section, lun = None, None
            continue
        if current is None:
            continue
        new_section = _section_of(raw)
        if new_section is not None:
            section, lun = new_section, None
            continue
        stripped = raw.strip()
        if section == "Account information":
            if stripped.endswith("(outgoing)"):
                current.outgoing_accounts.append(stripped.removesuffix("(outgoing)").strip())
            else:
                current.accounts.append(stripped)
            continue
        if section == "ACL information":
            current.acl.append(stripped)
            continue
        km = _KEY_RE.match(raw)
        if not km:
            continue
        key, value = km.group(1).strip(), km.group(2).strip()
        if section == "System information" and key == "State":
            current.state = value
        elif section == "I_T nexus information" and key == "Initiator":
            current.sessions.append(value.split()[0])
        elif section == "LUN information":
            if key == "LUN":
                lun = TgtLun(lun=int(value))
                current.luns.append(lun)
            elif lun is not None:
                _set_lun_field(lun, key, value)
    return targets


def _set_lun_field(lun: TgtLun, key: str, value: str) -> None:
    if key == "Type":
        lun.type = value
    elif key == "SCSI SN":
        lun.serial = value
    elif key == "SCSI ID":
        lun.scsi_id = value
    elif key == "Size":
        m = re.match(r"(\d+)\s*MB", value)
        lun.size_mb = int(m.group(1)) if m else 0
    elif key == "Backing store path":
        lun.backing_path = None if value in ("", "None") else value
    elif key == "Backing store type":
        lun.backing_type = value
    elif key == "Online":
        lun.online = value.lower() == "yes"


def parse_portals(text: str) -> list[str]:
    """`tgtadm --mode portal --op show` -> ['127.0.0.1:3260', '[::]:3260', ...]."""
    portals = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Portal:"):
            portals.append(line.removeprefix("Portal:").strip().rsplit(",", 1)[0])
    return portals


def parse_accounts(text: str) -> list[str]:
    """`tgtadm --mode account --op show` -> usernames."""
    return [line.strip() for line in text.splitlines()[1:] if line.strip()]
