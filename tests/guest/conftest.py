"""Tests that run INSIDE the QEMU guest (real device-mapper, LVM, LIO).

The host's pytest never collects them: it runs them through tests/test_guest_tier.py, which
boots the guest with STORAGE_IN_GUEST=1 and reports each file's outcome.
"""

from __future__ import annotations

import os

import pytest

IN_GUEST = os.environ.get("STORAGE_IN_GUEST") == "1"
collect_ignore_glob = [] if IN_GUEST else ["test_*.py", "*/test_*.py"]

# Scratch disks attached by the host runner (/dev/vdb, /dev/vdc, ...).
GUEST_DISKS = os.environ.get("GUEST_DISKS", "").split()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.guest)


@pytest.fixture(scope="session")
def guest_disks() -> list[str]:
    if not GUEST_DISKS:
        pytest.skip("no scratch disks were attached to the guest (GUEST_DISKS is empty)")
    return GUEST_DISKS
