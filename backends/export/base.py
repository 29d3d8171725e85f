"""The abstract export backend: an iSCSI target that offers block devices to other hosts.

The core (``storage.exports.service``) decides names, LUNs, CHAP credentials and ACLs and keeps them
in the catalog; a backend only makes the target match. One target per exported volume, one
data LUN per target. Backends hold no state of their own that the core cannot regenerate:
after a restart of the target the core calls ``export`` again for every catalog export.
Methods raise ``storage.errors`` types and never put a CHAP secret in a message or log.
"""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from storage.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class ChapCredentials:
    """Incoming (target-side) CHAP account; ``repr`` never shows the secret."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ChapCredentials(username={self.username!r}, password='***')"


@dataclass(frozen=True)
class ExportSpec:
    """Everything a backend needs to offer one device as one LUN of one target."""

    key: str  # catalog UUID of the exported volume
    device_path: str  # block device or regular file
    target_iqn: str
    lun: int
    chap: ChapCredentials | None = None
    initiators: tuple[str, ...] = ()  # empty: any initiator (CHAP still applies)
    serial: str | None = None  # SCSI unit serial number shown to initiators

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return (
            f"ExportSpec(key={self.key!r}, device_path={self.device_path!r}, target_iqn={self.target_iqn!r}, "
            f"lun={self.lun}, chap={self.chap!r}, initiators={self.initiators!r}, serial={self.serial!r})"
        )


@dataclass(frozen=True)
class ExportedTarget:
    """One target as the backend sees it now (for listing and reconciliation)."""

    target_iqn: str
    luns: Mapping[int, str]  # lun -> backing path
    initiators: tuple[str, ...] = ()
    chap_usernames: tuple[str, ...] = ()
    sizes: Mapping[int, int] = field(default_factory=dict)  # lun -> bytes, when the backend knows
    extra: Mapping[str, Any] = field(default_factory=dict)


class ExportBackend(ABC):
    """One iSCSI target implementation (userspace tgtd, kernel LIO)."""

    driver_name: ClassVar[str]
    default_lun: ClassVar[int] = 1  # the LUN of a volume's data in its target

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @property
    @abstractmethod
    def portal(self) -> str:
        """The ``host:port`` initiators connect to."""

    def check_host(self) -> None:
        """Raise storage.errors.Unsupported with one clear sentence if this host cannot run the driver."""

    @abstractmethod
    def ensure_running(self) -> None:
        """Start the target service if it is not running (idempotent)."""

    @abstractmethod
    def export(self, spec: ExportSpec) -> ExportedTarget:
        """Create the target, its LUN, ACL and CHAP account; replace a target of the same IQN."""

    @abstractmethod
    def unexport(self, target_iqn: str) -> None:
        """Remove the target and its CHAP account; NotFound when no such target exists."""

    @abstractmethod
    def resize(self, target_iqn: str, lun: int) -> int:
        """Make the LUN show the current size of its backing device; return that size in bytes."""

    @abstractmethod
    def list_exports(self) -> list[ExportedTarget]:
        """Every target the service has now, ours or not."""

    @abstractmethod
    def stop(self) -> None:
        """Take every target offline, remove them and stop the service if we started it."""


def device_size(path: str) -> int:
    """Size in bytes of a block device or regular file (pure read, no side effects)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def validate_backing_device(path: str) -> int:
    """Return the size of an exportable device or file; raise when it is missing or empty.

    Targets accept a detached loop device as a size-0 LUN without complaint, so this check
    runs before every export.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"backing device {path!r} does not exist", device=path) from None
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise InvalidInput(
            f"backing device {path!r} is neither a block device nor a regular file; accepted: a block device or file",
            device=path,
        )
    size = device_size(path)
    if size <= 0:
        raise InvalidInput(
            f"backing device {path!r} has size 0 (a detached loop device?); accepted: a device or file larger than 0 bytes",
            device=path,
        )
    return size
