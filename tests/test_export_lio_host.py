"""The lio driver on a host without configfs: a clear Unsupported, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import registry
from storage.errors import Unsupported


@pytest.mark.skipif(Path("/sys/kernel/config/target").exists(), reason="this host has LIO (configfs); the guest tier tests it")
def test_lio_unsupported_without_configfs(tmp_path: Path) -> None:
    cls = registry.load(registry.EXPORT_BACKENDS, "lio")
    backend = cls({"portal": "127.0.0.1:3260", "state_dir": str(tmp_path)})
    assert backend.portal == "127.0.0.1:3260" and backend.default_lun == 0
    with pytest.raises(Unsupported, match="configfs"):
        backend.ensure_running()


def test_export_drivers_are_registered() -> None:
    assert {"tgt", "lio"} <= set(registry.available(registry.EXPORT_BACKENDS))
    assert registry.load(registry.EXPORT_BACKENDS, "tgt").default_lun == 1
