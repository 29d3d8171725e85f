"""storage.exports.connector: connector validation, Cinder's connection info shape, the status
path of each attach/detach action (pure, table-tested)."""

from __future__ import annotations

import pytest

from storage.domain import VolumeStatus as V
from storage.errors import Conflict, InvalidInput
from storage.exports.connector import CONNECTOR_KEYS, cinder_connection_info, status_path, validate_connector

INI = "iqn.2026-11.test.compute:n1"


@pytest.mark.parametrize(("connector", "needle"), [
    ("iqn.2026-11.x:y", "must be an object"),
    ({"host": "h"}, "no initiator"),
    ({"initiator": "bad name"}, "not a valid iSCSI name"),
    ({"initiator": INI, "secret": "x"}, "unknown connector keys ['secret']"),
    ({"initiator": INI, "multipath": "yes"}, "'multipath' must be true or false"),
    ({"initiator": INI, "host": "h" * 256}, "at most 255 characters"),
    ({"initiator": INI, "ip": 5}, "'ip' is not accepted"),
    ({"initiator": INI, "wwpns": "abc"}, "a list of at most 64 strings"),
    ({"initiator": INI, "host_ips": ["1.2.3.4"] * 65}, "a list of at most 64 strings"),
    ({"initiator": INI, "mode": "rx"}, "mode 'rx'"),
    ({f"k{i}": 1 for i in range(len(CONNECTOR_KEYS) + 1)}, "keys; accepted: at most"),
])  # fmt: skip
def test_bad_connectors_are_refused_naming_the_key(connector: object, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_connector(connector)
    assert needle in err.value.message


def test_os_bricks_connector_is_accepted_as_gathered() -> None:
    brick = {"platform": "x86_64", "os_type": "linux", "ip": "198.18.0.5", "host": "c1", "multipath": False,
             "enforce_multipath": False, "initiator": INI, "do_local_attach": False, "uuid": "u",
             "system uuid": "s", "nvme_native_multipath": True, "nqn": "nqn.2014-08.org.nvmexpress:uuid:x",
             "nvme_hostid": "h", "found_dsc": "", "host_ips": ["198.18.0.5"], "wwpns": [], "sdc_guid": None}
    out = validate_connector(brick)
    assert out["initiator"] == INI and "sdc_guid" not in out and out["host_ips"] == ["198.18.0.5"]
    assert validate_connector({"host": "c1"}, need_initiator=False) == {"host": "c1"}


INFO = {"target_portal": "198.18.0.2:3260", "target_iqn": "iqn.2026-11.host.storage:volume-v", "target_lun": 1,
        "auth_method": "CHAP", "auth_username": "vol-x", "auth_password": "S3cret-S3cret-16", "volume_id": "v"}


def test_connection_info_is_cinders_shape() -> None:
    info = cinder_connection_info(INFO)
    assert info == {"driver_volume_type": "iscsi", "data": {
        "target_discovered": False, "target_portal": "198.18.0.2:3260", "target_iqn": INFO["target_iqn"],
        "target_lun": 1, "volume_id": "v", "auth_method": "CHAP", "auth_username": "vol-x",
        "auth_password": "S3cret-S3cret-16", "encrypted": False, "qos_specs": None, "access_mode": "rw"}}
    plain = cinder_connection_info({**INFO, "auth_method": None, "auth_username": None, "auth_password": None},
                                   access_mode="ro", multipath=True)["data"]
    assert "auth_method" not in plain and plain["access_mode"] == "ro"
    assert (plain["target_portals"], plain["target_iqns"], plain["target_luns"]) == (["198.18.0.2:3260"], [INFO["target_iqn"]], [1])


@pytest.mark.parametrize(("action", "current", "path"), [
    ("reserve", V.AVAILABLE, (V.ATTACHING,)),
    ("unreserve", V.ATTACHING, (V.AVAILABLE,)),
    ("unreserve", V.AVAILABLE, ()),
    ("unreserve", V.IN_USE, ()),
    ("attach", V.AVAILABLE, (V.ATTACHING, V.IN_USE)),
    ("attach", V.ATTACHING, (V.IN_USE,)),
    ("begin_detaching", V.IN_USE, (V.DETACHING,)),
    ("roll_detaching", V.DETACHING, (V.IN_USE,)),
    ("roll_detaching", V.IN_USE, ()),
    ("detach", V.IN_USE, (V.DETACHING, V.AVAILABLE)),
    ("detach", V.DETACHING, (V.AVAILABLE,)),
])  # fmt: skip
def test_status_paths(action: str, current: V, path: tuple) -> None:
    assert status_path(action, current, "v") == path


@pytest.mark.parametrize(("action", "current"), [
    ("reserve", V.ATTACHING), ("reserve", V.IN_USE), ("reserve", V.EXTENDING), ("attach", V.IN_USE),
    ("attach", V.ERROR), ("begin_detaching", V.AVAILABLE), ("begin_detaching", V.DETACHING),
    ("detach", V.AVAILABLE), ("detach", V.BACKING_UP),
])  # fmt: skip
def test_refused_moves_name_the_status(action: str, current: V) -> None:
    with pytest.raises(Conflict) as err:
        status_path(action, current, "v")
    assert current.value in err.value.message and f"os-{action}" in err.value.message


def test_every_step_is_a_move_the_volume_state_machine_allows() -> None:
    from storage.domain import can_transition
    from storage.exports.connector import ACTIONS

    for action, (starts, paths, _) in ACTIONS.items():
        for start in starts:
            prev = start
            for step in paths[start]:
                assert can_transition(prev, step), (action, prev, step)
                prev = step
