"""Models of exports and pure helpers (connection info shape, reconciliation decisions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage.errors import InvalidInput

# The keys os-brick's ISCSIConnector reads (plus volume_id, as Cinder sends it).
CONNECTION_INFO_KEYS = (
    "target_portal",
    "target_iqn",
    "target_lun",
    "auth_method",
    "auth_username",
    "auth_password",
    "volume_id",
)


class Export(BaseModel):
    """One exported volume. Never carries the CHAP secret."""

    model_config = ConfigDict(frozen=True)
    id: str
    volume_id: str
    volume_name: str
    driver: str
    target_iqn: str
    lun: int
    portal: str
    device_path: str
    attached_by_export: bool
    auth_method: str | None = None
    chap_username: str | None = None
    initiators: list[str] = Field(default_factory=list)
    size_bytes: int
    created_at: datetime
    updated_at: datetime
    origin: str = "export"  # "connection": made by os-initialize_connection


class ReconcileReport(BaseModel):
    """What ``st.exports.reconcile()`` found and did."""

    recreated: list[str] = Field(default_factory=list)  # volume names whose target was (re)made
    unchanged: list[str] = Field(default_factory=list)  # volume names whose target was right
    reattached: list[str] = Field(default_factory=list)  # volume names attached again (device was gone)
    strays: list[str] = Field(default_factory=list)  # target IQNs the catalog does not know
    removed_strays: list[str] = Field(default_factory=list)
    failed: list[dict[str, str]] = Field(default_factory=list)  # {"volume": name, "error": message}


def connection_info(export: Export, password: str | None, *, include_secret: bool) -> dict[str, Any]:
    """The dict os-brick's ISCSIConnector takes, plus volume_id.

    Without CHAP the auth keys are None (os-brick skips authentication when ``auth_method`` is
    falsy). With CHAP and ``include_secret`` False, ``auth_password`` is None: the shape stays
    the same and the secret stays out of logs and --json output.
    """
    chap = export.auth_method == "CHAP"
    return {
        "target_portal": export.portal,
        "target_iqn": export.target_iqn,
        "target_lun": export.lun,
        "auth_method": "CHAP" if chap else None,
        "auth_username": export.chap_username if chap else None,
        "auth_password": password if (chap and include_secret) else None,
        "volume_id": export.volume_id,
    }


def validate_portal(portal: str) -> str:
    host, sep, port = portal.rpartition(":") if isinstance(portal, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or " " in host:
        raise InvalidInput(
            f"portal {portal!r} is not accepted; accepted: HOST:PORT with PORT 1-65535, e.g. 192.0.2.10:3260",
            field="portal",
        )
    return portal


def target_matches(
    present_luns: dict[int, str] | None,
    present_users: tuple[str, ...],
    present_initiators: tuple[str, ...],
    *,
    lun: int,
    device: str,
    chap_username: str | None,
    initiators: tuple[str, ...],
) -> bool:
    """True when a target the backend reports already serves the export as the catalog says."""
    if present_luns is None or present_luns.get(lun) != device:
        return False
    if tuple(present_users) != ((chap_username,) if chap_username else ()):
        return False
    return sorted(present_initiators) == sorted(initiators)
