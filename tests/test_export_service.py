"""st.exports against a real tgtd on 127.0.0.1 with file/loop volumes and libiscsi/qemu initiators."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.domain import VolumeStatus
from storage.errors import Conflict, InvalidInput, NotFound
from tests import iscsi_tools as it

pytestmark = [pytest.mark.tgt, pytest.mark.loop, pytest.mark.both_catalogs]

MiB = 1024 * 1024


def write_config(data_dir: Path, portal: str, control_port: int, manage: bool, extra: str = "") -> Path:
    cfg = data_dir / "storage.toml"
    cfg.write_text(
        f'data_dir = "{data_dir}"\n'
        f'[export]\ndriver = "tgt"\nportal = "{portal}"\ncontrol_port = {control_port}\n'
        f"manage_daemon = {'true' if manage else 'false'}\n{extra}"
    )
    return cfg


@pytest.fixture
def est(data_dir: Path, tgtd_clean, catalog_kind: str, request: pytest.FixtureRequest) -> Iterator[storage.Storage]:
    """A Storage whose exports go to the session tgtd (catalog: SQLite, or PostgreSQL for [postgresql])."""
    extra = f'[catalog]\nurl = "{request.getfixturevalue("catalog_url")}"\n' if catalog_kind != "sqlite" else ""
    s = storage.open(write_config(data_dir, tgtd_clean.portal, tgtd_clean.control_port, manage=False, extra=extra))
    try:
        yield s
    finally:
        _cleanup(s)


def _cleanup(s: storage.Storage) -> None:
    for exp in s.exports.list():
        try:
            s.exports.unexport(exp.volume_id)
        except Exception:  # noqa: BLE001 - best effort; the fixture's tgtd cleanup follows
            pass
    for vol in s.volumes.list():
        s.volumes.delete(vol.id, force=True)
    s.close()


def creds(info: dict) -> dict:
    return {"user": info["auth_username"], "password": info["auth_password"]}


def url_of(info: dict, password: str | None = None) -> str:
    return it.iscsi_url(
        info["target_portal"], info["target_iqn"], info["target_lun"], info["auth_username"],
        password if password is not None else info["auth_password"],
    )  # fmt: skip


def volume_file(st: storage.Storage, vol) -> Path:
    return Path(st.host.volume_backend(vol.pool).volume_path(vol.id))


def test_export_read_write_through_iscsi(est) -> None:
    vol = est.volumes.create("exp1", "24M")
    exp = est.exports.export("exp1")
    assert exp.target_iqn == f"iqn.2026-11.host.storage:volume-{vol.id}"
    assert exp.lun == 1 and exp.auth_method == "CHAP" and exp.attached_by_export
    assert est.volumes.get("exp1").status == VolumeStatus.IN_USE

    hidden = est.exports.connection_info("exp1")
    assert list(hidden) == [
        "target_portal", "target_iqn", "target_lun", "auth_method", "auth_username", "auth_password", "volume_id",
    ]  # fmt: skip
    assert hidden["auth_password"] is None and hidden["volume_id"] == vol.id
    info = est.exports.connection_info("exp1", include_secret=True)
    assert len(info["auth_password"]) == 16

    assert it.unit_serial(url_of(info)) == vol.id.replace("-", "")
    assert it.total_size(url_of(info)) == 24 * MiB
    res = it.qemu_io(info["target_portal"], info["target_iqn"], 1, ["write -P 0x7e 3M 512k"], **creds(info))
    assert "wrote 524288/524288" in res.stdout, res.stdout + res.stderr
    with open(volume_file(est, vol), "rb") as f:
        f.seek(3 * MiB)
        assert f.read(512 * 1024) == b"\x7e" * 512 * 1024
    wrong = it.capacity(url_of(info, password="Not-The-Secret1"))
    assert not wrong.ok and "Authentication failure" in wrong.stderr
    assert [e.volume_name for e in est.exports.list()] == ["exp1"]


def test_unexport_restores_volume_and_forgets_secret(est) -> None:
    est.volumes.create("exp2", "8M")
    est.exports.export("exp2")
    info = est.exports.connection_info("exp2", include_secret=True)
    est.exports.unexport("exp2")
    assert est.volumes.get("exp2").status == VolumeStatus.AVAILABLE
    assert est.volumes.get("exp2").attached_device is None
    assert not it.capacity(url_of(info)).ok
    assert est.exports.secrets.keys() == []
    with pytest.raises(NotFound, match="not exported"):
        est.exports.unexport("exp2")
    with pytest.raises(NotFound, match="not exported"):
        est.exports.connection_info("exp2")


def test_export_of_attached_volume_keeps_attachment(est) -> None:
    vol = est.volumes.attach(est.volumes.create("exp3", "8M").id)
    exp = est.exports.export("exp3", chap=False)
    assert exp.device_path == vol.attached_device and not exp.attached_by_export
    info = est.exports.connection_info("exp3")
    assert info["auth_method"] is None and info["auth_username"] is None
    assert it.total_size(it.iscsi_url(info["target_portal"], info["target_iqn"], 1)) == 8 * MiB
    est.exports.unexport("exp3")
    assert est.volumes.get("exp3").status == VolumeStatus.IN_USE  # we did not attach it, we leave it


def test_bad_input_is_refused_clearly(est) -> None:
    est.volumes.create("exp4", "8M")
    with pytest.raises(InvalidInput, match="'iqn.bad' is not a valid iSCSI name"):
        est.exports.export("exp4", initiators=["iqn.bad"])
    with pytest.raises(InvalidInput, match="11 characters; accepted: 12-16") as short:
        est.exports.export("exp4", chap_secret="Short-secre")
    assert "Short-secre" not in str(short.value)
    with pytest.raises(InvalidInput, match="17 characters") as long_:
        est.exports.export("exp4", chap_secret="Much-too-long-sec")
    assert "Much-too-long-sec" not in str(long_.value)
    with pytest.raises(InvalidInput, match="portal"):
        est.exports.export("exp4", portal="no-port")
    with pytest.raises(NotFound):
        est.exports.export("missing-volume")
    assert est.exports.list() == [] and est.volumes.get("exp4").status == VolumeStatus.AVAILABLE

    est.exports.export("exp4")
    with pytest.raises(Conflict, match="exported already"):
        est.exports.export("exp4")

    est.volumes.create("exp5", "8M")
    est.volumes.reset_status("exp5", "error")
    with pytest.raises(Conflict, match="is error; accepted: a volume that is available or in-use"):
        est.exports.export("exp5")
    assert [e.volume_name for e in est.exports.list()] == ["exp4"]


def test_given_secret_and_acl(est) -> None:
    allowed = "iqn.1993-08.org.debian:01:client"
    est.volumes.create("exp6", "8M")
    est.exports.export("exp6", initiators=[allowed], chap_username="client-6", chap_secret="Given-Secret-12")
    info = est.exports.connection_info("exp6", include_secret=True)
    assert info["auth_username"] == "client-6" and info["auth_password"] == "Given-Secret-12"
    assert it.capacity(url_of(info), initiator=allowed).ok
    denied = it.capacity(url_of(info), initiator="iqn.1993-08.org.debian:01:other")
    assert not denied.ok


def test_extend_is_visible_to_initiator(est) -> None:
    est.volumes.create("exp7", "16M")
    est.exports.export("exp7")
    info = est.exports.connection_info("exp7", include_secret=True)
    assert it.total_size(url_of(info)) == 16 * MiB
    est.volumes.extend("exp7", "40M")  # the volume service updates the LUN itself
    assert it.total_size(url_of(info)) == 40 * MiB
    assert est.exports.get("exp7").size_bytes == 40 * MiB
    exp = est.exports.on_extend("exp7")  # idempotent
    assert exp is not None and exp.size_bytes == 40 * MiB
    est.volumes.create("plain", "8M")
    assert est.exports.on_extend("plain") is None


def _catalog_contents(st: storage.Storage) -> str:
    """Every row of every catalog table as text (and, for SQLite, the database file's bytes)."""
    from sqlalchemy import text

    from storage.catalog.models import metadata

    parts = []
    with st.catalog.engine.connect() as conn:
        for table in metadata.sorted_tables:
            parts.extend(repr(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {table.name}")))
    if st.catalog.engine.dialect.name == "sqlite":
        parts.append(Path(str(st.catalog.engine.url.database)).read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_secrets_stay_secret(est, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    est.volumes.create("exp8", "8M")
    exp = est.exports.export("exp8", chap_secret="Leak-Check-9876")
    path = est.exports.secrets.path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert json.loads(path.read_text()) == {exp.volume_id: "Leak-Check-9876"}
    for text in (caplog.text, exp.model_dump_json(), json.dumps(est.exports.connection_info("exp8")),
                 repr(est.exports.list()), _catalog_contents(est)):
        assert "Leak-Check-9876" not in text
    os.chmod(path, 0o644)
    with pytest.raises(Exception, match="mode 600") as err:
        est.exports.connection_info("exp8", include_secret=True)
    assert "Leak-Check-9876" not in str(err.value)
    os.chmod(path, 0o600)


def test_reconcile_after_tgtd_is_killed(data_dir: Path, own_tgtd) -> None:
    st = storage.open(write_config(data_dir, own_tgtd.portal, own_tgtd.control_port, manage=True))
    try:
        vol = st.volumes.create("survivor", "8M")
        st.volumes.create("other", "8M")
        st.exports.export("survivor")
        st.exports.export("other", chap=False, initiators=["iqn.2026-11.test.storage:initiator"])
        info = st.exports.connection_info("survivor", include_secret=True)
        res = it.qemu_io(info["target_portal"], info["target_iqn"], 1, ["write -P 0x42 1M 64k"], **creds(info))
        assert "wrote 65536/65536" in res.stdout
        assert st.exports.reconcile().unchanged == ["survivor", "other"]

        pid = st.host.export_backend.daemon.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while st.host.export_backend.adm.answering() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not it.capacity(url_of(info)).ok

        report = st.exports.reconcile()  # starts tgtd again and re-creates both targets
        assert report.recreated == ["survivor", "other"] and report.failed == [] and report.strays == []
        assert it.unit_serial(url_of(info)) == vol.id.replace("-", "")
        res = it.qemu_io(info["target_portal"], info["target_iqn"], 1, ["read -P 0x42 1M 64k"], **creds(info))
        assert "read 65536/65536" in res.stdout and "verification failed" not in res.stdout, res.stdout
        assert not it.capacity(url_of(info, password="Not-The-Secret1")).ok
        other = st.exports.connection_info("other")
        other_url = it.iscsi_url(other["target_portal"], other["target_iqn"], 1)
        assert it.capacity(other_url).ok
        assert not it.capacity(other_url, initiator="iqn.2026-11.test.storage:someone-else").ok
    finally:
        _cleanup(st)
        st.host.export_backend.stop()


def test_reconcile_reports_and_removes_strays(est) -> None:
    from backends.export.base import ExportSpec

    vol = est.volumes.attach(est.volumes.create("exp9", "8M").id)
    stray = "iqn.2026-11.host.storage:volume-00000000-0000-0000-0000-000000000000"
    foreign = "iqn.2026-11.org.example:not-ours"
    for iqn in (stray, foreign):
        est.host.export_backend.export(ExportSpec(key="x", device_path=vol.attached_device, target_iqn=iqn, lun=1))
    est.exports.secrets.put("00000000-0000-0000-0000-000000000000", "Orphan-Secret-1")
    report = est.exports.reconcile()
    assert sorted(report.strays) == sorted([stray, foreign]) and report.removed_strays == []
    assert est.exports.secrets.keys() == []  # secret of no export: pruned
    report = est.exports.reconcile(remove_strays=True)
    assert report.removed_strays == [stray]  # a target outside our IQN prefix is only reported
    assert [t.target_iqn for t in est.host.export_backend.list_exports()] == [foreign]
    est.host.export_backend.unexport(foreign)


def test_delete_hook_removes_target_so_volume_can_go(est) -> None:
    est.volumes.create("doomed", "8M")
    est.exports.export("doomed")
    with pytest.raises(Conflict, match="attached"):
        est.volumes.delete("doomed")  # exported means in-use
    est.volumes.delete("doomed", force=True)  # removes the target first: it held the loop device
    assert est.exports.list() == [] and est.exports.secrets.keys() == []
    assert est.host.export_backend.list_exports() == []
    est.volumes.create("kept", "8M")
    assert est.exports.on_delete("kept") is None
