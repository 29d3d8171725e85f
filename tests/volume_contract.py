"""The VolumeBackend contract, reusable for every driver (file, LVM thick/thin, ...).

Subclass ``VolumeBackendContract`` in a test module and provide a ``backend`` fixture that
yields a fresh, empty backend instance (and cleans it up)::

    class TestLvmThin(VolumeBackendContract):
        @pytest.fixture
        def backend(self, ...):
            yield LvmVolumeBackend("thin", {...})

The tests use only the ABC of backends/volume/base.py, write through ``open_volume`` or the attached
device, and detach everything they attach, even when an assertion fails.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from backends.volume.base import VolumeBackend, WipeMode

MIB = 1024 * 1024


def new_id() -> str:
    return str(uuid.uuid4())


def pwrite(path: str, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def pread(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def block_size_of(device: str) -> int:
    return int(subprocess.run(["blockdev", "--getsize64", device], check=True, capture_output=True, text=True).stdout)


@contextmanager
def attached(backend: VolumeBackend, volume_id: str) -> Iterator[str]:
    device = backend.attach(volume_id)
    try:
        yield device
    finally:
        backend.detach(volume_id)


class VolumeBackendContract:
    """Behaviour every VolumeBackend must show. Needs a ``backend`` fixture."""

    size = 8 * MIB

    @pytest.fixture
    def backend(self) -> VolumeBackend:  # pragma: no cover - provided by subclasses
        raise NotImplementedError("subclass VolumeBackendContract and provide a backend fixture")

    def write(self, backend: VolumeBackend, vid: str, offset: int, data: bytes) -> None:
        with backend.open_volume(vid) as path:
            pwrite(path, offset, data)

    def read(self, backend: VolumeBackend, vid: str, offset: int, length: int) -> bytes:
        with backend.open_volume(vid) as path:
            return pread(path, offset, length)

    # -- pool ----------------------------------------------------------------
    def test_capabilities_and_usage(self, backend: VolumeBackend) -> None:
        caps = backend.capabilities()
        assert caps.size_granularity > 0 and caps.copy_method
        before = backend.usage()
        assert before.total_bytes > 0 and before.free_bytes >= 0
        vid = new_id()
        backend.create_volume(vid, self.size)
        try:
            assert backend.usage().provisioned_bytes >= before.provisioned_bytes + self.size
        finally:
            backend.delete_volume(vid)

    # -- volumes ---------------------------------------------------------------
    def test_create_list_delete(self, backend: VolumeBackend) -> None:
        vid = new_id()
        backend.create_volume(vid, self.size)
        items = {i.id: i for i in backend.list_items() if i.kind == "volume"}
        assert items[vid].size_bytes == self.size
        assert self.read(backend, vid, 0, 4096) == bytes(4096)  # a new volume reads as zeros
        backend.delete_volume(vid)
        assert vid not in {i.id for i in backend.list_items()}
        backend.delete_volume(vid)  # deleting what is gone is not an error

    def test_delete_with_zero_wipe_reports_progress(self, backend: VolumeBackend) -> None:
        vid = new_id()
        backend.create_volume(vid, self.size)
        self.write(backend, vid, MIB, b"secret" * 1000)
        calls: list[tuple[int, int]] = []
        backend.delete_volume(vid, WipeMode.ZERO, lambda done, total: calls.append((done, total)))
        assert calls and calls[-1][0] == calls[-1][1] > 0
        assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
        assert vid not in {i.id for i in backend.list_items()}

    # -- snapshots -------------------------------------------------------------
    def test_snapshot_keeps_old_data(self, backend: VolumeBackend) -> None:
        vid, sid = new_id(), new_id()
        backend.create_volume(vid, self.size)
        try:
            self.write(backend, vid, 0, b"A" * 4096)
            backend.create_snapshot(vid, sid)
            self.write(backend, vid, 0, b"B" * 4096)
            with backend.open_snapshot(vid, sid) as path:
                assert pread(path, 0, 4096) == b"A" * 4096
            assert self.read(backend, vid, 0, 4096) == b"B" * 4096
            snaps = [i for i in backend.list_items() if i.kind == "snapshot"]
            assert sid in {i.id for i in snaps}
        finally:
            backend.delete_snapshot(vid, sid)
            backend.delete_volume(vid)
        assert sid not in {i.id for i in backend.list_items()}

    def test_snapshot_of_attached_volume_sees_device_writes(self, backend: VolumeBackend) -> None:
        vid, sid = new_id(), new_id()
        backend.create_volume(vid, self.size)
        try:
            with attached(backend, vid) as dev:
                pwrite(dev, 2 * MIB, b"through-device" * 100)
                backend.create_snapshot(vid, sid)
                pwrite(dev, 2 * MIB, b"X" * 1400)
            with backend.open_snapshot(vid, sid) as path:
                assert pread(path, 2 * MIB, 1400) == b"through-device" * 100
        finally:
            backend.delete_snapshot(vid, sid)
            backend.delete_volume(vid)

    def test_clone_volume_and_snapshot(self, backend: VolumeBackend) -> None:
        vid, sid, c1, c2 = new_id(), new_id(), new_id(), new_id()
        backend.create_volume(vid, self.size)
        try:
            self.write(backend, vid, MIB, b"original")
            backend.create_snapshot(vid, sid)
            self.write(backend, vid, MIB, b"changed!")
            backend.clone_volume(vid, c1, self.size * 2)
            backend.clone_snapshot(vid, sid, c2, self.size)
            sizes = {i.id: i.size_bytes for i in backend.list_items() if i.kind == "volume"}
            assert sizes[c1] == self.size * 2 and sizes[c2] == self.size
            assert self.read(backend, c1, MIB, 8) == b"changed!"
            assert self.read(backend, c2, MIB, 8) == b"original"
            self.write(backend, c1, MIB, b"clone-1!")  # clones are independent of their source
            assert self.read(backend, vid, MIB, 8) == b"changed!"
        finally:
            for v in (c1, c2):
                backend.delete_volume(v)
            backend.delete_snapshot(vid, sid)
            backend.delete_volume(vid)

    def test_revert_to_snapshot(self, backend: VolumeBackend) -> None:
        vid, sid = new_id(), new_id()
        backend.create_volume(vid, self.size)
        try:
            self.write(backend, vid, 0, b"before")
            backend.create_snapshot(vid, sid)
            self.write(backend, vid, 0, b"after!")
            self.write(backend, vid, 3 * MIB, b"new data")
            backend.revert_to_snapshot(vid, sid)
            assert self.read(backend, vid, 0, 6) == b"before"
            assert self.read(backend, vid, 3 * MIB, 8) == bytes(8)
        finally:
            backend.delete_snapshot(vid, sid)
            backend.delete_volume(vid)

    # -- attach ----------------------------------------------------------------
    def test_attach_write_detach(self, backend: VolumeBackend) -> None:
        vid = new_id()
        backend.create_volume(vid, self.size)
        try:
            with attached(backend, vid) as dev:
                assert os.path.exists(dev)
                assert backend.attached_device(vid) == dev
                assert backend.attach(vid) == dev  # attaching again returns the same device
                assert block_size_of(dev) == self.size
                pwrite(dev, 5 * MIB, b"via the device")
            assert backend.attached_device(vid) is None
            assert self.read(backend, vid, 5 * MIB, 14) == b"via the device"
        finally:
            backend.delete_volume(vid)

    def test_extend_while_attached(self, backend: VolumeBackend) -> None:
        vid = new_id()
        backend.create_volume(vid, self.size)
        try:
            with attached(backend, vid) as dev:
                pwrite(dev, 0, b"keep")
                backend.extend_volume(vid, self.size * 2)
                assert block_size_of(dev) == self.size * 2
                pwrite(dev, self.size * 2 - 4096, b"end!")
                assert pread(dev, 0, 4) == b"keep"
            assert self.read(backend, vid, self.size * 2 - 4096, 4) == b"end!"
        finally:
            backend.delete_volume(vid)

    def test_changed_ranges_cover_writes(self, backend: VolumeBackend) -> None:
        vid, s1, s2 = new_id(), new_id(), new_id()
        backend.create_volume(vid, self.size)
        try:
            self.write(backend, vid, 0, os.urandom(2 * MIB))
            backend.create_snapshot(vid, s1)
            self.write(backend, vid, 5 * MIB, os.urandom(64 * 1024))
            backend.create_snapshot(vid, s2)
            result = backend.changed_ranges(vid, s1, s2)
            if not backend.capabilities().changed_ranges:
                assert result is None
                return
            assert result is not None and result.source
            covered = sum(length for _, length in result.ranges)
            assert any(o <= 5 * MIB and 5 * MIB + 64 * 1024 <= o + n for o, n in result.ranges), result.ranges
            assert covered < 2 * MIB, f"unchanged data reported as changed: {result.ranges}"
            assert result.ranges == sorted(result.ranges)
        finally:
            for s in (s1, s2):
                backend.delete_snapshot(vid, s)
            backend.delete_volume(vid)
