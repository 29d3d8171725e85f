"""CHAP secrets shared by API replicas: sealed in the catalog with ``[cluster] secrets_key_file``.

Pure: sealing round-trips, a wrong key or another volume's row does not open (typed error naming
the key file), the key file is checked (missing, mode, size; raw or hex). Real: a private
PostgreSQL catalog, an agent heartbeating host ``ha``, the session tgtd: replica A exports a volume
with a CHAP secret; replica B (another data dir, another host name, the same catalog and key file)
answers ``connection_info`` with that secret, which neither the catalog's rows nor A's local secrets
file holds in plaintext; without the key B cannot (the bug this fixes); a secret made before the key
was configured moves from the local file into the catalog when first read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import storage
from storage.errors import DataCorruption, InvalidInput, PermissionDenied
from storage.exports.catalog_secrets import read_key, seal, unseal
from storage.exports.secrets import ExportSecrets

VID = "0b5b7a8e-2f4e-4d55-9a3b-3a5c1d9e7f10"


def _key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def test_seal_round_trip_and_refusals(tmp_path: Path) -> None:
    key, other = os.urandom(32), os.urandom(32)
    sealed = seal(key, VID, "Given-Secret-12")
    assert "Given-Secret-12" not in sealed and sealed.startswith("v1:")
    assert unseal(key, VID, sealed) == "Given-Secret-12"
    assert seal(key, VID, "Given-Secret-12") != sealed  # a fresh nonce each time
    with pytest.raises(DataCorruption, match="does not open with \\[cluster\\] secrets_key_file"):
        unseal(other, VID, sealed)
    with pytest.raises(DataCorruption, match="does not open"):
        unseal(key, "another-volume", sealed)  # a row copied onto another volume
    with pytest.raises(DataCorruption, match="unknown format"):
        unseal(key, VID, "Given-Secret-12")
    for bad in ("", "x" * 256):
        with pytest.raises(InvalidInput, match="accepted: 1 to 255 bytes"):
            seal(key, VID, bad)


@pytest.mark.parametrize(
    ("data", "mode", "error", "match"),
    [
        (None, 0o600, InvalidInput, "does not exist; accepted: a file of 32 random bytes"),
        (b"k" * 32, 0o644, PermissionDenied, "mode 644\\); accepted: mode 600"),
        (b"k" * 31, 0o600, InvalidInput, "holds 31 bytes; accepted: exactly 32 raw bytes or 64 hex digits"),
        (b"zz" * 32, 0o600, InvalidInput, "holds 64 bytes"),
    ],
)
def test_key_file_refusals(tmp_path: Path, data: bytes | None, mode: int, error: type, match: str) -> None:
    path = tmp_path / "secrets.key"
    if data is not None:
        _key(path, data, mode)
    with pytest.raises(error, match=match):
        read_key(path)


def test_key_file_raw_or_hex(tmp_path: Path) -> None:
    raw = os.urandom(32)
    assert read_key(_key(tmp_path / "raw", raw)) == raw
    assert read_key(_key(tmp_path / "hex", raw.hex().encode() + b"\n")) == raw


@pytest.mark.tgt
@pytest.mark.loop
@pytest.mark.slow
def test_a_second_replica_answers_with_the_first_ones_secret(tmp_path: Path, pg_database: str, tgtd_clean) -> None:
    from tests.test_hosts_agent import AgentProc, wait_for

    key = _key(tmp_path / "secrets.key", os.urandom(32))

    def config(name: str, host: str, with_key: bool = True) -> Path:
        root = tmp_path / name
        root.mkdir()
        path = root / "storage.toml"
        path.write_text(
            f'host_name = "{host}"\ndata_dir = "{root / "data"}"\n[catalog]\nurl = "{pg_database}"\n'
            f'[pools.default]\ndriver = "file"\npath = "{tmp_path / "pool"}"\n'
            f'[export]\ndriver = "tgt"\nportal = "{tgtd_clean.portal}"\ncontrol_port = {tgtd_clean.control_port}\n'
            "manage_daemon = false\n"
            "[cluster]\nheartbeat_interval = 0.5\nservice_down_time = 4\n"
            + (f'secrets_key_file = "{key}"\n' if with_key else "")
        )
        return path

    a_cfg, b_cfg, b_nokey = config("a", "ha"), config("b", "api2"), config("b-nokey", "api2", with_key=False)
    agent = AgentProc(a_cfg).start()
    try:
        with storage.open(a_cfg) as a, storage.open(b_cfg) as b, storage.open(b_nokey) as nokey:
            wait_for("host ha up", lambda: any(h.name == "ha" and h.state.value == "up" for h in a.hosts.list()), 60)
            a.volumes.create("shared", "8M")
            exp = a.exports.export("shared", chap_username="client-1", chap_secret="Given-Secret-12")
            try:
                info = b.exports.connection_info("shared", include_secret=True)
                assert info["auth_username"] == "client-1" and info["auth_password"] == "Given-Secret-12"
                with a.catalog.session() as s:
                    from storage.catalog.export_secrets import ExportSecretRow

                    sealed = [r.sealed for r in s.query(ExportSecretRow).all()]
                assert len(sealed) == 1 and "Given-Secret-12" not in sealed[0]
                local = tmp_path / "a" / "data" / "secrets" / "export-chap.json"
                assert not local.exists() or "Given-Secret-12" not in local.read_text()
                with pytest.raises(Exception, match="CHAP secret of the export of volume .* is missing"):
                    nokey.exports.connection_info("shared", include_secret=True)  # each replica's own file: the bug

                # a secret in the local file from before the key: moved into the catalog when first read
                with a.catalog.session() as s:
                    s.query(ExportSecretRow).delete()
                ExportSecrets(local).put(exp.volume_id, "Given-Secret-12")
                assert a.exports.connection_info("shared", include_secret=True)["auth_password"] == "Given-Secret-12"
                assert b.exports.connection_info("shared", include_secret=True)["auth_password"] == "Given-Secret-12"
                assert exp.volume_id not in ExportSecrets(local).keys()
            finally:
                a.exports.unexport("shared")
                a.volumes.delete("shared", force=True)
            with a.catalog.session() as s:
                assert s.query(ExportSecretRow).count() == 0  # unexport took it
    finally:
        agent.stop()
