"""The ``[export]`` table read once: names and portals for the control plane, options for the driver.

Pure: ``export_setup(cfg, data_dir)`` validates and returns an ``ExportSetup``; bad values raise
InvalidInput naming the value and what is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.config import ExportConfig
from storage.exports.iscsi_names import DEFAULT_IQN_PREFIX, validate_iqn_prefix
from storage.exports.models import validate_portal


@dataclass(frozen=True)
class ExportSetup:
    driver: str
    iqn_prefix: str
    listen_portal: str  # HOST:PORT the target listens on
    advertise_portal: str  # HOST:PORT connection info names
    state_dir: Path  # <data_dir>/exports: the host lock and the driver's state
    secrets_path: Path  # <data_dir>/secrets/export-chap.json
    driver_options: dict[str, Any] = field(default_factory=dict)  # what the export driver gets


def export_setup(cfg: ExportConfig, data_dir: Path) -> ExportSetup:
    options: dict[str, Any] = dict(cfg.model_extra or {})
    iqn_prefix = validate_iqn_prefix(str(options.pop("iqn_prefix", DEFAULT_IQN_PREFIX)))
    listen = validate_portal(cfg.portal)
    advertise = validate_portal(str(options.pop("advertise_portal", cfg.portal)))
    state_dir = data_dir / "exports"
    return ExportSetup(
        driver=cfg.driver, iqn_prefix=iqn_prefix, listen_portal=listen, advertise_portal=advertise,
        state_dir=state_dir, secrets_path=data_dir / "secrets" / "export-chap.json",
        driver_options={**options, "portal": listen, "state_dir": str(state_dir)},
    )  # fmt: skip
