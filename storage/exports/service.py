"""ExportService (``st.exports``): offer volumes to other hosts over iSCSI.

One target per volume, named ``<iqn_prefix>:volume-<uuid>`` (docs/iscsi.md). Exporting an
available volume attaches it on this host (a loop device for the file backend) and offers that
device; an in-use volume's device is offered as is. CHAP is on by default: a per-volume
username and a generated 16-character secret kept in ``<data_dir>/secrets/export-chap.json``
(mode 0600). The catalog is the source of truth; ``reconcile()`` makes the target service match
it after a restart and reports targets nobody asked for.

Configuration, ``[export]``: ``driver`` (tgt | lio), ``portal`` (HOST:PORT the target listens
on), ``iqn_prefix``, ``advertise_portal`` (what connection info names, default ``portal``) and
the driver's own options (e.g. ``control_port`` for tgt).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from storage.catalog.base import new_id, utcnow
from storage.catalog.exports import ExportRow
from storage.domain import Volume, VolumeStatus
from storage.errors import Conflict, InvalidInput, NotFound, StorageError
from storage.exports.models import (
    Export,
    ReconcileReport,
    connection_info,
    target_matches,
    validate_portal,
)
from storage.exports.secrets import ExportSecrets
from storage.logs.ops import operation
from storage.exports.iscsi_names import (
    default_chap_username,
    generate_chap_secret,
    target_iqn,
    unit_serial,
    validate_chap_secret,
    validate_chap_username,
    validate_initiators,
)

if TYPE_CHECKING:
    from pathlib import Path

    from storage.catalog import Catalog
    from storage.exports.catalog_secrets import CatalogSecrets
    from storage.exports.setup import ExportSetup
    from storage.host.api import HostApi
    from storage.volumes.service import VolumeService

log = logging.getLogger(__name__)
EXPORTABLE = (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE)
# os-initialize_connection: also while a Cinder attach or detach is in progress (as Cinder allows)
CONNECTABLE = (VolumeStatus.AVAILABLE, VolumeStatus.ATTACHING, VolumeStatus.IN_USE, VolumeStatus.DETACHING)
CONNECTION = "connection"


def _model(row: ExportRow, volume_name: str) -> Export:
    return Export(
        id=row.id, volume_id=row.volume_id, volume_name=volume_name, driver=row.driver, target_iqn=row.target_iqn,
        lun=row.lun, portal=row.portal, device_path=row.device_path, attached_by_export=row.attached_by_export,
        auth_method=row.auth_method, chap_username=row.chap_username, initiators=list(row.initiators or []),
        size_bytes=row.size_bytes, created_at=row.created_at, updated_at=row.updated_at, origin=row.origin or "export",
    )  # fmt: skip


class ExportService:
    def __init__(self, catalog: "Catalog", host: "HostApi", setup: "ExportSetup", volumes: "VolumeService",
                 host_on: "Callable[[str], HostApi] | None" = None, *, host_name: str | None = None,
                 secrets_key_file: "Path | None" = None) -> None:
        """host_on(name): the HostApi of another host. In a cluster a volume's target lives on the
        host that owns the volume: its driver, its portal, its target calls (``_on``).
        host_name: with several hosts, reconcile only the exports of this host's volumes."""
        self._catalog = catalog
        self._host = host
        self._host_on = host_on or (lambda _name: host)
        self._host_name = host_name
        self._volumes = volumes
        self.iqn_prefix = setup.iqn_prefix
        self.listen_portal = setup.listen_portal
        self.advertise_portal = setup.advertise_portal
        self.state_dir = setup.state_dir
        self.secrets: "ExportSecrets | CatalogSecrets" = ExportSecrets(setup.secrets_path)
        if secrets_key_file is not None:  # shared by the replicas (docs/cluster.md); read and checked here
            from storage.exports.catalog_secrets import CatalogSecrets

            self.secrets = CatalogSecrets(catalog, secrets_key_file, ExportSecrets(setup.secrets_path))

    # -- plumbing ------------------------------------------------------------
    @contextmanager
    def _host_lock(self) -> Iterator[None]:
        """Serialise export changes between processes (target ids are allocated by listing)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "exports.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _on(self, vol: Volume) -> "HostApi":
        """The HostApi of the host that owns ``vol`` (its target is there, behind that host's portal)."""
        return self._host_on(vol.host) if vol.host else self._host

    def _driver(self, vol: Volume) -> dict[str, Any]:
        """The owning host's export driver: name, first LUN and the portal it advertises (a host
        that does not say: this configuration's ``advertise_portal``)."""
        driver = self._on(vol).export_driver()
        return {**driver, "portal": driver.get("portal") or self.advertise_portal}

    def _row(self, volume_id: str) -> ExportRow | None:
        with self._catalog.session() as s:
            return s.scalar(select(ExportRow).where(ExportRow.volume_id == volume_id))

    def _spec(self, row: ExportRow, device: str) -> dict[str, Any]:
        """What ``HostApi.export_target`` gets (plain data; the CHAP secret only here)."""
        chap = None
        if row.auth_method == "CHAP":
            secret = self.secrets.get(row.volume_id)
            if secret is None or row.chap_username is None:
                raise NotFound(
                    f"the CHAP secret of the export of volume {row.volume_id} is missing from {self.secrets.path}; "
                    "unexport and export the volume again"
                )
            chap = {"username": row.chap_username, "password": secret}
        return {
            "key": row.volume_id, "device_path": device, "target_iqn": row.target_iqn, "lun": row.lun, "chap": chap,
            "initiators": list(row.initiators or ()), "serial": unit_serial(row.volume_id),
        }  # fmt: skip

    # -- reads ---------------------------------------------------------------
    def get(self, volume_ref: str) -> Export:
        vol = self._volumes.get(volume_ref)
        row = self._row(vol.id)
        if row is None:
            raise NotFound(f"volume {vol.name!r} is not exported; see `storagectl volume export`", volume=vol.name)
        return _model(row, vol.name)

    def list(self) -> list[Export]:
        with self._catalog.session() as s:
            rows = s.scalars(select(ExportRow).order_by(ExportRow.created_at)).all()
        names = {v.id: v.name for v in self._volumes.list()}
        return [_model(r, names.get(r.volume_id, r.volume_id)) for r in rows]

    def connection_info(self, volume_ref: str, *, include_secret: bool = False) -> dict[str, Any]:
        """os-brick ISCSIConnector properties (+ volume_id); the secret only with include_secret."""
        export = self.get(volume_ref)
        password = self.secrets.get(export.volume_id) if include_secret and export.auth_method == "CHAP" else None
        if include_secret and export.auth_method == "CHAP" and password is None:
            # never properties without the password: the initiator's login would fail obscurely
            raise NotFound(
                f"the CHAP secret of the export of volume {export.volume_id} is missing from {self.secrets.path}; "
                "with several API replicas set the same [cluster] secrets_key_file on each (docs/cluster.md), "
                "else unexport and export the volume again",
                volume=export.volume_name,
            )
        return connection_info(export, password, include_secret=include_secret)

    # -- export / unexport -----------------------------------------------------
    @operation("export.create")
    def export(
        self,
        volume_ref: str,
        *,
        initiators: list[str] | tuple[str, ...] | None = None,
        chap: bool = True,
        chap_username: str | None = None,
        chap_secret: str | None = None,
        portal: str | None = None,
    ) -> Export:
        """Export a volume as its own target; ``portal`` overrides the advertised HOST:PORT."""
        inits = validate_initiators(initiators)
        if not chap and (chap_username or chap_secret):
            raise InvalidInput("chap_username/chap_secret were given with chap disabled; accepted: enable CHAP or drop them")
        if chap_secret is not None:
            validate_chap_secret(chap_secret)
        explicit = validate_portal(portal) if portal is not None else None
        vol = self._volumes.get(volume_ref)
        self._volumes.require_host_up(vol)
        username = validate_chap_username(chap_username) if chap_username else default_chap_username(vol.id)
        if vol.status not in EXPORTABLE:
            raise Conflict(
                f"volume {vol.name!r} is {vol.status.value}; accepted: a volume that is available or in-use",
                volume=vol.name, status=vol.status.value,
            )  # fmt: skip
        driver = self._driver(vol)
        advertised = explicit or driver["portal"]
        with self._host_lock():
            row = self._claim(vol, driver["driver"], advertised, inits, username if chap else None, driver["default_lun"])
            try:
                return self._export_claimed(vol, row, (chap_secret or generate_chap_secret()) if chap else None)
            except BaseException:
                self._release(row)
                raise

    def _claim(
        self, vol: Volume, driver: str, portal: str, inits: tuple[str, ...], username: str | None, default_lun: int,
        origin: str = "export",
    ) -> ExportRow:
        now = utcnow()
        row = ExportRow(
            id=new_id(), volume_id=vol.id, driver=driver, target_iqn=target_iqn(self.iqn_prefix, vol.id),
            lun=default_lun, portal=portal, device_path="", attached_by_export=False,
            auth_method="CHAP" if username else None, chap_username=username, initiators=list(inits),
            size_bytes=vol.size_bytes, created_at=now, updated_at=now, origin=origin,
        )  # fmt: skip
        with self._catalog.session() as s:  # a concurrent export of this volume: Conflict from the catalog
            existing = s.scalar(select(ExportRow).where(ExportRow.volume_id == vol.id))
            if existing is not None:
                raise Conflict(
                    f"volume {vol.name!r} is exported already as {existing.target_iqn}; unexport it first",
                    volume=vol.name,
                )
            s.add(row)
        return row

    def _export_claimed(self, vol: Volume, row: ExportRow, secret: str | None) -> Export:
        attached_by_export = False
        if vol.status == VolumeStatus.IN_USE and vol.attached_device:
            device = vol.attached_device
        elif row.origin == CONNECTION:  # the target holds the device; the Cinder actions move the status
            device = self._host.attach(vol.pool, vol.id)
            attached_by_export = True
        else:
            vol = self._volumes.attach(vol.id)
            attached_by_export = True
            device = vol.attached_device
        row.attached_by_export = attached_by_export
        row.device_path = device or ""
        self._save(row)
        try:
            if secret is not None:
                self.secrets.put(vol.id, secret)
            exported = self._host.export_target(self._spec(row, row.device_path))
            row.size_bytes = exported["sizes"].get(row.lun, vol.size_bytes)
            self._save(row)
        except BaseException:
            if attached_by_export:
                self._release_device(row, vol)
            raise
        log.info("exported volume %s as %s lun %s", vol.name, row.target_iqn, row.lun)
        return _model(row, vol.name)

    def _save(self, row: ExportRow) -> None:
        row.updated_at = utcnow()
        with self._catalog.session() as s:
            s.merge(row)

    def _release(self, row: ExportRow) -> None:
        self.secrets.delete(row.volume_id)
        with self._catalog.session() as s:
            s.query(ExportRow).filter(ExportRow.id == row.id).delete()

    def _detach_quietly(self, volume_id: str) -> None:
        try:
            self._volumes.detach(volume_id)
        except StorageError as exc:
            log.warning("could not detach volume %s after a failed export: %s", volume_id, exc.message)

    def _release_device(self, row: ExportRow, vol: Volume) -> None:
        """Give back the device an export attached: a connection's through the host (no status), a
        `volume export`'s through the volume service (in-use -> available)."""
        if row.origin != CONNECTION:
            self._detach_quietly(vol.id)
            return
        try:
            self._host.detach(vol.pool, vol.id)
        except StorageError as exc:
            log.warning("could not detach volume %s after removing its connection target: %s", vol.name, exc.message)

    @operation("export.delete")
    def unexport(self, volume_ref: str) -> Export:
        """Remove the target, detach the volume if the export attached it, forget the secret."""
        export = self.get(volume_ref)
        owner = self._volumes.get(export.volume_id)
        self._volumes.require_host_up(owner)
        with self._host_lock():
            try:
                self._on(owner).unexport_target(export.target_iqn)
            except NotFound:
                log.info("target %s was already gone", export.target_iqn)
            if export.attached_by_export:
                vol = self._volumes.get(export.volume_id)
                if export.origin == CONNECTION:
                    if not vol.attached_device:  # not if attached here meanwhile
                        self._host.detach(vol.pool, vol.id)
                elif vol.status == VolumeStatus.IN_USE:
                    self._volumes.detach(vol.id)
            with self._catalog.session() as s:
                s.query(ExportRow).filter(ExportRow.id == export.id).delete()
            self.secrets.delete(export.volume_id)
        return export

    def on_delete(self, volume_ref: str) -> Export | None:
        """Call before deleting a volume: removes its target, row and secret, but does not detach
        (the volume service does). A target keeps the device open, so a loop device could not
        be detached while exported. None when the volume is not exported."""
        vol = self._volumes.get(volume_ref)
        row = self._row(vol.id)
        if row is None:
            return None
        with self._host_lock():
            try:
                self._on(vol).unexport_target(row.target_iqn)
            except NotFound:
                pass
            if row.origin == CONNECTION and row.attached_by_export:
                self._host.detach(vol.pool, vol.id)
            with self._catalog.session() as s:
                s.query(ExportRow).filter(ExportRow.id == row.id).delete()
            self.secrets.delete(vol.id)
        return _model(row, vol.name)

    # -- initiators of connections (os-initialize_connection / os-terminate_connection) -------
    def allow_initiator(self, volume_ref: str, initiator: str) -> tuple[Export, bool, bool]:
        """Let ``initiator`` log in to the volume's target: make the target (origin connection, CHAP
        on, ACL on that initiator) when there is none, else add it to the ACL unless the ACL already
        lets it in (it is listed, or the ACL is open). Returns (export, created, added)."""
        (ini,) = validate_initiators([initiator])
        vol = self._volumes.get(volume_ref)
        self._volumes.require_host_up(vol)
        if vol.status not in CONNECTABLE:
            raise Conflict(
                f"volume {vol.name!r} is {vol.status.value}; accepted: a volume that is "
                f"{', '.join(s.value for s in CONNECTABLE)}", volume=vol.name, status=vol.status.value,
            )  # fmt: skip
        driver = self._driver(vol)
        with self._host_lock():
            row = self._row(vol.id)
            if row is None:
                row = self._claim(vol, driver["driver"], driver["portal"], (ini,), default_chap_username(vol.id),
                                  driver["default_lun"], origin=CONNECTION)  # fmt: skip
                try:
                    return self._export_claimed(vol, row, generate_chap_secret()), True, False
                except BaseException:
                    self._release(row)
                    raise
            inits = list(row.initiators or [])
            if not inits or ini in inits:
                return _model(row, vol.name), False, False
            row.initiators = [*inits, ini]
            self._reexport(row, vol)
            return _model(row, vol.name), False, True

    def revoke_initiator(self, volume_ref: str, initiator: str, *, remove: bool) -> Export | None:
        """Undo ``allow_initiator``: with ``remove`` take the initiator off the ACL; a target made for
        connections goes (and the device it held is detached) when no initiator is left. None when
        the target is gone (or was never made)."""
        vol = self._volumes.get(volume_ref)
        self._volumes.require_host_up(vol)
        with self._host_lock():
            row = self._row(vol.id)
            if row is None:
                return None
            inits = list(row.initiators or [])
            left = [i for i in inits if i != initiator] if remove else inits
            if row.origin == CONNECTION and not left:
                try:
                    self._on(vol).unexport_target(row.target_iqn)
                except NotFound:
                    log.info("target %s was already gone", row.target_iqn)
                if row.attached_by_export and not vol.attached_device:  # not if attached here meanwhile
                    self._release_device(row, vol)
                with self._catalog.session() as s:
                    s.query(ExportRow).filter(ExportRow.id == row.id).delete()
                self.secrets.delete(vol.id)
                return None
            if left != inits:
                row.initiators = left
                self._reexport(row, vol)
            return _model(row, vol.name)

    def _reexport(self, row: ExportRow, vol: Volume) -> None:
        """The target again with the row's ACL (tgt re-creates it: sessions log in again)."""
        exported = self._host.export_target(self._spec(row, row.device_path))
        row.size_bytes = exported["sizes"].get(row.lun, vol.size_bytes)
        self._save(row)
        log.info("export of volume %s now allows %d initiator(s)", vol.name, len(row.initiators or []))

    # -- extend and reconciliation ---------------------------------------------
    def on_extend(self, volume_ref: str) -> Export | None:
        """Call after a volume grew: the LUN shows the new size. None when it is not exported."""
        vol = self._volumes.get(volume_ref)
        row = self._row(vol.id)
        if row is None:
            return None
        with self._host_lock():
            try:
                row.size_bytes = self._on(vol).resize_target(row.target_iqn, row.lun)
            except NotFound:  # the target service lost it (restart): make it again
                self._ensure_target(row, vol, ReconcileReport())
            self._save(row)
        return _model(row, vol.name)

    @operation("export.reconcile")
    def reconcile(self, *, remove_strays: bool = False) -> ReconcileReport:
        """Make the target service match the catalog; report (and optionally remove) strays."""
        report = ReconcileReport()
        with self._host_lock():
            self._host.ensure_export_service()
            with self._catalog.session() as s:
                rows = s.scalars(select(ExportRow).order_by(ExportRow.created_at)).all()
            for row in rows:
                try:
                    vol = self._volumes.get(row.volume_id)
                    if self._host_name is not None and vol.host and vol.host != self._host_name:
                        continue  # another host's export: its own reconcile keeps it
                    self._ensure_target(row, vol, report)
                except StorageError as exc:
                    report.failed.append({"volume": row.volume_id, "error": exc.message})
            known = {r.target_iqn for r in rows}
            exported_ids = {r.volume_id for r in rows}
            for key in self.secrets.keys():  # secrets of exports removed with their volume
                if key not in exported_ids:
                    self.secrets.delete(key)
            for target in self._host.list_targets():
                iqn = target["target_iqn"]
                if iqn in known:
                    continue
                report.strays.append(iqn)
                if remove_strays and iqn.startswith(self.iqn_prefix + ":"):
                    self._host.unexport_target(iqn)
                    report.removed_strays.append(iqn)
        return report

    def _ensure_target(self, row: ExportRow, vol: Volume, report: ReconcileReport) -> None:
        device = row.device_path
        if row.attached_by_export:
            real = self._host.attached_device(vol.pool, vol.id)
            if real is None and row.origin == CONNECTION:  # no status to move: the device only
                real = self._host.attach(vol.pool, vol.id)
                report.reattached.append(vol.name)
            elif real is None:  # e.g. after a reboot: loop devices are gone
                if vol.status == VolumeStatus.IN_USE:
                    self._volumes.detach(vol.id)
                real = self._volumes.attach(vol.id).attached_device
                report.reattached.append(vol.name)
            device = real or device
        present = {t["target_iqn"]: t for t in self._host.list_targets()}.get(row.target_iqn)
        if present is not None and device == row.device_path and target_matches(
            dict(present["luns"]), tuple(present["chap_usernames"]), tuple(present["initiators"]),
            lun=row.lun, device=device, chap_username=row.chap_username, initiators=tuple(row.initiators or ()),
        ):  # fmt: skip
            report.unchanged.append(vol.name)
            return
        row.device_path = device
        exported = self._host.export_target(self._spec(row, device))
        row.size_bytes = exported["sizes"].get(row.lun, row.size_bytes)
        self._save(row)
        report.recreated.append(vol.name)

    def stop(self) -> None:
        """Remove every target and stop the target service; the catalog keeps the exports for reconcile()."""
        with self._host_lock():
            self._host.stop_export_service()
