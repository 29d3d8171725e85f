"""ConnectionService (``st.connections``): the Cinder connection actions a compute host uses.

``initialize`` (os-initialize_connection) exports the volume through the export service for the
connector's initiator (a target of its own with CHAP and an ACL on that initiator, or that
initiator added to an existing target) and returns Cinder's connection info, the only answer that
carries the CHAP secret. ``terminate`` undoes what the connection did. ``reserve``, ``attach``,
``begin_detaching``, ``detach``... move the volume's status by compare-and-set
(storage.exports.connector.ACTIONS) and record the attachment. The export goes through
``ExportService`` and so through the volume's host (``HostApi``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select

from storage.catalog.base import new_id, utcnow
from storage.catalog.connections import CinderAttachmentRow, ConnectionRow
from storage.catalog.volumes import cas_volume_status
from storage.domain import Volume
from storage.errors import Conflict, InvalidInput, NotFound
from storage.exports.connector import MODES, cinder_connection_info, status_path, validate_connector

if TYPE_CHECKING:
    from storage.catalog import Catalog
    from storage.exports.service import ExportService
    from storage.volumes.service import VolumeService

log = logging.getLogger(__name__)
ATTACH_TEXT_MAX = 255


class CinderAttachment(BaseModel):
    """What os-attach recorded (Cinder's volume view lists it under ``attachments``)."""

    model_config = ConfigDict(frozen=True)
    id: str
    volume_id: str
    instance_uuid: str | None = None
    host_name: str | None = None
    mountpoint: str
    mode: str
    attached_at: datetime


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _attachment(row: CinderAttachmentRow) -> CinderAttachment:
    return CinderAttachment(
        id=row.id, volume_id=row.volume_id, instance_uuid=row.instance_uuid, host_name=row.host_name,
        mountpoint=row.mountpoint, mode=row.mode, attached_at=_aware(row.attached_at),
    )  # fmt: skip


def _text(value: object, field: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > ATTACH_TEXT_MAX:
        raise InvalidInput(f"{field} is not accepted; accepted: a string of 1-{ATTACH_TEXT_MAX} characters", field=field)
    return value


class ConnectionService:
    def __init__(self, catalog: "Catalog", exports: "ExportService", volumes: "VolumeService") -> None:
        self._catalog = catalog
        self._exports = exports
        self._volumes = volumes

    # -- connections ------------------------------------------------------------------------
    def initialize(self, volume_ref: str, connector: object) -> dict[str, Any]:
        """os-initialize_connection: export for the connector's initiator; Cinder's connection info."""
        conn = validate_connector(connector)
        vol = self._volumes.get(volume_ref)
        export, created, added = self._exports.allow_initiator(vol.id, conn["initiator"])
        with self._catalog.session() as s:
            row = s.scalar(select(ConnectionRow).where(
                ConnectionRow.volume_id == vol.id, ConnectionRow.initiator == conn["initiator"]))  # fmt: skip
            if row is None:
                s.add(ConnectionRow(
                    id=new_id(), volume_id=vol.id, initiator=conn["initiator"], host=conn.get("host"), connector=conn,
                    created_export=created, added_initiator=added, created_at=utcnow(), updated_at=utcnow(),
                ))  # fmt: skip
            else:  # again for the same initiator (Nova does, e.g. on reboot): keep what the first did
                row.connector, row.host, row.updated_at = conn, conn.get("host"), utcnow()
                row.created_export, row.added_initiator = row.created_export or created, row.added_initiator or added
        log.info("volume %s: connection for initiator %s (host %s)", vol.name, conn["initiator"], conn.get("host"))
        info = self._exports.connection_info(vol.id, include_secret=True)
        attachment = self._attachment_row(vol.id)
        return cinder_connection_info(
            info, access_mode=attachment.mode if attachment else "rw", multipath=bool(conn.get("multipath"))
        )

    def terminate(self, volume_ref: str, connector: object | None) -> None:
        """os-terminate_connection: forget that initiator's connection (every connection when the
        connector is null, as Cinder's force detach) and undo what it changed on the export.
        Idempotent: an initiator with no connection changes nothing."""
        vol = self._volumes.get(volume_ref)
        initiator = None if connector is None else validate_connector(connector)["initiator"]
        with self._catalog.session() as s:
            q = select(ConnectionRow).where(ConnectionRow.volume_id == vol.id)
            if initiator is not None:
                q = q.where(ConnectionRow.initiator == initiator)
            rows = [(r.id, r.initiator, r.added_initiator or r.created_export) for r in s.scalars(q).all()]
        for row_id, ini, remove in rows:
            self._exports.revoke_initiator(vol.id, ini, remove=remove)
            with self._catalog.session() as s:
                s.execute(delete(ConnectionRow).where(ConnectionRow.id == row_id))
            log.info("volume %s: connection for initiator %s terminated", vol.name, ini)

    def connections(self, volume_ref: str) -> list[dict[str, Any]]:
        vol = self._volumes.get(volume_ref)
        with self._catalog.session() as s:
            rows = s.scalars(select(ConnectionRow).where(ConnectionRow.volume_id == vol.id)
                             .order_by(ConnectionRow.created_at)).all()  # fmt: skip
            return [{"initiator": r.initiator, "host": r.host, "created_at": _aware(r.created_at)} for r in rows]

    # -- attach / detach bookkeeping -----------------------------------------------------------
    def _attachment_row(self, volume_id: str) -> CinderAttachmentRow | None:
        with self._catalog.session() as s:
            return s.scalar(select(CinderAttachmentRow).where(CinderAttachmentRow.volume_id == volume_id))

    def _move(self, vol: Volume, action: str, session: Any) -> None:
        for target in status_path(action, vol.status, vol.name):
            cas_volume_status(session, vol.id, target, transitional=False)

    def _simple(self, volume_ref: str, action: str) -> Volume:
        vol = self._volumes.get(volume_ref)
        with self._catalog.session() as s:
            if action == "begin_detaching" and s.scalar(
                select(CinderAttachmentRow.id).where(CinderAttachmentRow.volume_id == vol.id)
            ) is None:
                raise Conflict(f"volume {vol.name!r} has no attachment to detach; accepted: a volume attached with os-attach",
                               volume=vol.name, status=vol.status.value)  # fmt: skip
            self._move(vol, action, s)
        return self._volumes.get(vol.id)

    def reserve(self, volume_ref: str) -> Volume:
        return self._simple(volume_ref, "reserve")

    def unreserve(self, volume_ref: str) -> Volume:
        return self._simple(volume_ref, "unreserve")

    def begin_detaching(self, volume_ref: str) -> Volume:
        return self._simple(volume_ref, "begin_detaching")

    def roll_detaching(self, volume_ref: str) -> Volume:
        return self._simple(volume_ref, "roll_detaching")

    def attach(
        self, volume_ref: str, *, mountpoint: str, instance_uuid: str | None = None, host_name: str | None = None,
        mode: str = "rw",
    ) -> CinderAttachment:
        """os-attach: the volume is in-use, attached to an instance or a host at ``mountpoint``."""
        _text(mountpoint, "mountpoint", required=True)
        _text(host_name, "host_name")
        if instance_uuid is not None:
            _uuid(instance_uuid)
        if instance_uuid is None and host_name is None:
            raise InvalidInput("os-attach needs instance_uuid or host_name; accepted: either or both", field="instance_uuid")
        if mode not in MODES:
            raise InvalidInput(f"attach mode {mode!r} is not accepted; accepted: {', '.join(MODES)}", field="mode")
        vol = self._volumes.get(volume_ref)
        row = CinderAttachmentRow(id=new_id(), volume_id=vol.id, instance_uuid=instance_uuid, host_name=host_name,
                                  mountpoint=mountpoint, mode=mode, attached_at=utcnow())  # fmt: skip
        with self._catalog.session() as s:
            self._move(vol, "attach", s)
            s.add(row)
        log.info("volume %s attached at %s of %s", vol.name, mountpoint, instance_uuid or host_name)
        return _attachment(row)

    def detach(self, volume_ref: str, attachment_id: str | None = None) -> Volume:
        """os-detach: drop the attachment; the volume is available again."""
        vol = self._volumes.get(volume_ref)
        with self._catalog.session() as s:
            row = s.scalar(select(CinderAttachmentRow).where(CinderAttachmentRow.volume_id == vol.id))
            if row is None:
                raise Conflict(
                    f"volume {vol.name!r} has no attachment to detach; accepted: a volume attached with os-attach "
                    "(one attached on its storage host detaches with `storagectl volume detach`)",
                    volume=vol.name, status=vol.status.value,
                )  # fmt: skip
            if attachment_id is not None and attachment_id != row.id:
                raise NotFound(f"attachment {attachment_id!r} of volume {vol.name!r} not found", attachment=attachment_id)
            self._move(vol, "detach", s)
            s.execute(delete(CinderAttachmentRow).where(CinderAttachmentRow.id == row.id))
        log.info("volume %s detached", vol.name)
        return self._volumes.get(vol.id)

    def attachments(self, volume_ids: list[str] | None = None) -> dict[str, list[CinderAttachment]]:
        """Attachments by volume id (of the given volumes, or all), for the Cinder views."""
        with self._catalog.session() as s:
            q = select(CinderAttachmentRow)
            if volume_ids is not None:
                q = q.where(CinderAttachmentRow.volume_id.in_(volume_ids))
            out: dict[str, list[CinderAttachment]] = {}
            for row in s.scalars(q).all():
                out.setdefault(row.volume_id, []).append(_attachment(row))
        return out


def _uuid(value: object) -> str:
    import uuid

    if not isinstance(value, str) or len(value) > 36:
        raise InvalidInput("instance_uuid is not accepted; accepted: a UUID", field="instance_uuid")
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"instance_uuid {value!r} is not accepted; accepted: a UUID", field="instance_uuid") from None
    return value


