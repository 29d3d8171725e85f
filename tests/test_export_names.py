"""Pure parts of exports: IQN and CHAP validation, naming scheme, tgtadm output parsing."""

from __future__ import annotations

import pytest

from backends.export.tgt.show import parse_accounts, parse_portals, parse_targets
from storage.errors import InvalidInput
from storage.exports.models import Export, connection_info, target_matches
from storage.exports.iscsi_names import (
    default_chap_username,
    generate_chap_secret,
    is_valid_iscsi_name,
    target_iqn,
    validate_chap_secret,
    validate_initiators,
    validate_iqn_prefix,
)

VID = "0f8e5a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b"


@pytest.mark.parametrize(
    "name",
    [
        "iqn.1993-08.org.debian:01:abcdef123456",
        "iqn.2026-11.host.storage:volume-" + VID,
        "iqn.2004-10.com.ubuntu",
        "eui.02004567A425678D",
        "naa.52004567BA64678D",
        "naa.62004567BA64678D0123456789ABCDEF",
    ],
)
def test_valid_iscsi_names(name: str) -> None:
    assert is_valid_iscsi_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "iqn.bad", "iqn.2026-13.com.example", "iqn.26-11.com.example", "iqn.2026-11.-bad.com", "eui.123",
     "naa.1234", "iqn.2026-11.com.example:has space", "iqn.2026-11." + "a" * 230, "wwn.0123456789abcdef"],
)  # fmt: skip
def test_invalid_iscsi_names(name: str) -> None:
    assert not is_valid_iscsi_name(name)
    with pytest.raises(InvalidInput, match="accepted: iqn.YYYY-MM"):
        validate_initiators([name])


def test_initiators_deduplicated_in_order() -> None:
    a, b = "iqn.2026-11.com.example:a", "iqn.2026-11.com.example:b"
    assert validate_initiators([b, a, b]) == (b, a)
    assert validate_initiators(None) == ()


def test_target_naming_scheme() -> None:
    assert target_iqn("iqn.2026-11.com.example", VID) == f"iqn.2026-11.com.example:volume-{VID}"
    with pytest.raises(InvalidInput, match="iqn_prefix"):
        validate_iqn_prefix("example.com")


@pytest.mark.parametrize("length", [12, 14, 16])
def test_chap_secret_lengths_accepted(length: int) -> None:
    assert validate_chap_secret("x" * length)


@pytest.mark.parametrize("secret", ["", "x" * 11, "x" * 17, "with space 1234", "tab\tsecret12345", "ümlaut-secret1"])
def test_chap_secret_refused_without_echo(secret: str) -> None:
    with pytest.raises(InvalidInput, match="accepted: 12-16 printable ASCII") as err:
        validate_chap_secret(secret)
    assert not secret or secret not in str(err.value)


def test_generated_credentials() -> None:
    secrets = {generate_chap_secret() for _ in range(50)}
    assert len(secrets) == 50 and all(len(s) == 16 and s.isalnum() for s in secrets)
    assert default_chap_username(VID) == "vol-0f8e5a4c1b2d4e3f9a8b"


def _export(auth: str | None) -> Export:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Export(
        id="e", volume_id=VID, volume_name="v", driver="tgt", target_iqn="iqn.2026-11.a.b:volume-x", lun=1,
        portal="127.0.0.1:3260", device_path="/dev/loop1", attached_by_export=True, auth_method=auth,
        chap_username="u" if auth else None, size_bytes=1, created_at=now, updated_at=now,
    )  # fmt: skip


def test_connection_info_shape() -> None:
    info = connection_info(_export("CHAP"), "Secret-12345678", include_secret=False)
    assert info == {
        "target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2026-11.a.b:volume-x", "target_lun": 1,
        "auth_method": "CHAP", "auth_username": "u", "auth_password": None, "volume_id": VID,
    }  # fmt: skip
    assert connection_info(_export("CHAP"), "Secret-12345678", include_secret=True)["auth_password"] == "Secret-12345678"
    open_info = connection_info(_export(None), None, include_secret=True)
    assert open_info["auth_method"] is None and open_info["auth_username"] is None


def test_target_matches_decisions() -> None:
    want = dict(lun=1, device="/dev/loop1", chap_username="u", initiators=("iqn.2026-11.a.b:i",))
    assert target_matches({1: "/dev/loop1"}, ("u",), ("iqn.2026-11.a.b:i",), **want)
    assert not target_matches(None, ("u",), ("iqn.2026-11.a.b:i",), **want)
    assert not target_matches({1: "/dev/loop2"}, ("u",), ("iqn.2026-11.a.b:i",), **want)
    assert not target_matches({1: "/dev/loop1"}, (), ("iqn.2026-11.a.b:i",), **want)
    assert not target_matches({1: "/dev/loop1"}, ("u",), (), **want)


SHOW = """Target 1: iqn.2026-11.test:t1
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 10
            Initiator: iqn.2026-11.test:init1 alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Backing store type: null
            Backing store path: None
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: 0123abcd
            Size: 67 MB, Block size: 512
            Online: Yes
            Backing store type: rdwr
            Backing store path: /dev/loop3
            Backing store flags:
    Account information:
        u1
        out1 (outgoing)
    ACL information:
        iqn.2026-11.test:init1
Target 2: iqn.2026-11.test:t2
    System information:
        Driver: iscsi
        State: offline
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
    Account information:
    ACL information:
        ALL
"""


def test_parse_tgtadm_show() -> None:
    t1, t2 = parse_targets(SHOW)
    assert (t1.tid, t1.iqn, t1.state) == (1, "iqn.2026-11.test:t1", "ready")
    assert [lun.lun for lun in t1.data_luns()] == [1]
    lun = t1.data_luns()[0]
    assert (lun.serial, lun.size_mb, lun.backing_path, lun.backing_type) == ("0123abcd", 67, "/dev/loop3", "rdwr")
    assert t1.accounts == ["u1"] and t1.outgoing_accounts == ["out1"]
    assert t1.acl == ["iqn.2026-11.test:init1"] and t1.sessions == ["iqn.2026-11.test:init1"]
    assert (t2.state, t2.data_luns(), t2.acl, t2.accounts) == ("offline", [], ["ALL"], [])
    assert parse_targets("") == []


def test_parse_portals_and_accounts() -> None:
    assert parse_portals("Portal: 127.0.0.1:3261,1\nPortal: [::]:3260,1\n") == ["127.0.0.1:3261", "[::]:3260"]
    assert parse_accounts("Account list:\n    u1\n    u2\n") == ["u1", "u2"]
    assert parse_accounts("Account list:\n") == []
