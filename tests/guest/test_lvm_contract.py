"""The shared VolumeBackend contract (tests/volume_contract.py) on real LVM, thick and thin.

Runs inside the guest: the thick VG lives on the first scratch disk, the thin VG (with its
thin pool) on the second; both are created by the backend itself from ``physical_volumes``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backends.volume.lvm.driver import LvmVolumeBackend
from tests.volume_contract import VolumeBackendContract

THICK_VG = "gthick"
THIN_VG = "gthin"


def make_backend(kind: str, disks: list[str]) -> LvmVolumeBackend:
    if kind == "thick":
        return LvmVolumeBackend("lvm-thick", {"vg_name": THICK_VG, "physical_volumes": disks[0]})
    return LvmVolumeBackend("lvm-thin", {"vg_name": THIN_VG, "lvm_type": "thin", "physical_volumes": disks[1]})


def leftover_lvs(backend: LvmVolumeBackend) -> list[str]:
    return [item.id for item in backend.list_items()]


@pytest.fixture(scope="module")
def thick_backend(guest_disks: list[str]) -> Iterator[LvmVolumeBackend]:
    backend = make_backend("thick", guest_disks)
    assert backend.capabilities().copy_method == "copy" and not backend.capabilities().thin
    yield backend
    assert leftover_lvs(backend) == []


@pytest.fixture(scope="module")
def thin_backend(guest_disks: list[str]) -> Iterator[LvmVolumeBackend]:
    backend = make_backend("thin", guest_disks)
    caps = backend.capabilities()
    assert caps.thin and caps.changed_ranges and caps.copy_method == "cow"
    yield backend
    assert leftover_lvs(backend) == []


class TestLvmThick(VolumeBackendContract):
    @pytest.fixture
    def backend(self, thick_backend: LvmVolumeBackend) -> LvmVolumeBackend:
        return thick_backend


class TestLvmThin(VolumeBackendContract):
    @pytest.fixture
    def backend(self, thin_backend: LvmVolumeBackend) -> LvmVolumeBackend:
        return thin_backend
