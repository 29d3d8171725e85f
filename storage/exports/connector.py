"""Cinder connection actions, the pure part: os-brick connectors in, Cinder connection info out,
and which status moves each attach/detach bookkeeping action makes.

A connector is what os-brick's ``get_connector_properties`` gathers on a compute host
(``initiator``, ``ip``, ``host``, ``multipath``, ``platform``...; Nova adds ``mountpoint`` and
``mode``). Every key os-brick or Nova may send is accepted and typed; any other key is refused
naming the accepted ones; strings and lists are bounded before anything stores them.
"""

from __future__ import annotations

from typing import Any

from storage.domain import VolumeStatus
from storage.errors import Conflict, InvalidInput
from storage.exports.iscsi_names import validate_initiator

V = VolumeStatus
CONNECTOR_STR_MAX = 255
CONNECTOR_LIST_MAX = 64

# key -> type: "str", "bool", or "list" (of strings); os-brick 6/7 (connector.py and every
# connector's get_connector_properties) plus what Nova and Cinder's attachment API add.
CONNECTOR_KEYS: dict[str, str] = {
    "platform": "str", "os_type": "str", "ip": "str", "host": "str", "multipath": "bool",
    "enforce_multipath": "bool", "initiator": "str", "do_local_attach": "bool", "wwpns": "list",
    "wwnns": "list", "nqn": "str", "nvme_hostid": "str", "uuid": "str", "system uuid": "str",
    "nvme_native_multipath": "bool", "found_dsc": "str", "host_ips": "list", "sdc_guid": "str",
    "mountpoint": "str", "mode": "str",
}  # fmt: skip
MODES = ("rw", "ro")


def validate_connector(connector: object, *, need_initiator: bool = True) -> dict[str, Any]:
    """A bounded, typed copy of an os-brick connector; InvalidInput naming the bad key otherwise."""
    if not isinstance(connector, dict):
        raise InvalidInput(
            f"connector must be an object of os-brick connector properties; got {type(connector).__name__}",
            field="connector",
        )
    if len(connector) > len(CONNECTOR_KEYS):
        raise InvalidInput(f"connector has {len(connector)} keys; accepted: at most {len(CONNECTOR_KEYS)}", field="connector")
    unknown = sorted(str(k)[:64] for k in connector if k not in CONNECTOR_KEYS)
    if unknown:
        raise InvalidInput(
            f"unknown connector keys {unknown[:10]}; accepted: {', '.join(sorted(CONNECTOR_KEYS))}", field="connector"
        )
    out: dict[str, Any] = {}
    for key, value in connector.items():
        kind = CONNECTOR_KEYS[key]
        if value is None:
            continue
        if kind == "bool" and not isinstance(value, bool):
            raise InvalidInput(f"connector {key!r} must be true or false; got {type(value).__name__}", field=key)
        if kind == "str" and (not isinstance(value, str) or len(value) > CONNECTOR_STR_MAX):
            raise InvalidInput(
                f"connector {key!r} is not accepted; accepted: a string of at most {CONNECTOR_STR_MAX} characters",
                field=key,
            )
        if kind == "list" and (
            not isinstance(value, list) or len(value) > CONNECTOR_LIST_MAX
            or any(not isinstance(v, str) or len(v) > CONNECTOR_STR_MAX for v in value)
        ):  # fmt: skip
            raise InvalidInput(
                f"connector {key!r} is not accepted; accepted: a list of at most {CONNECTOR_LIST_MAX} strings "
                f"of at most {CONNECTOR_STR_MAX} characters",
                field=key,
            )
        out[key] = list(value) if kind == "list" else value
    if "mode" in out and out["mode"] not in MODES:
        raise InvalidInput(f"connector mode {out['mode']!r} is not accepted; accepted: {', '.join(MODES)}", field="mode")
    if "initiator" in out:
        validate_initiator(out["initiator"])
    elif need_initiator:
        raise InvalidInput(
            "connector has no initiator; accepted: os-brick connector properties with the host's iSCSI initiator "
            "name (initiator, from /etc/iscsi/initiatorname.iscsi)",
            field="initiator",
        )
    return out


def cinder_connection_info(
    info: dict[str, Any], *, access_mode: str = "rw", encrypted: bool = False, multipath: bool = False
) -> dict[str, Any]:
    """Cinder's answer to os-initialize_connection for an iSCSI target (what Nova hands to
    os-brick): ``{"driver_volume_type": "iscsi", "data": {...}}``. ``info`` is
    ``storage.exports.models.connection_info`` with the secret. Without CHAP the auth keys are
    absent, as Cinder leaves them; with ``multipath`` the plural keys os-brick reads are added."""
    data: dict[str, Any] = {
        "target_discovered": False,
        "target_portal": info["target_portal"],
        "target_iqn": info["target_iqn"],
        "target_lun": info["target_lun"],
        "volume_id": info["volume_id"],
    }
    if info.get("auth_method"):
        data.update(auth_method=info["auth_method"], auth_username=info["auth_username"], auth_password=info["auth_password"])
    if multipath:
        data.update(target_portals=[data["target_portal"]], target_iqns=[data["target_iqn"]], target_luns=[data["target_lun"]])
    data.update(encrypted=encrypted, qos_specs=None, access_mode=access_mode)
    return {"driver_volume_type": "iscsi", "data": data}


# -- attach/detach bookkeeping -------------------------------------------------------------
# action -> (statuses it starts from, the path of statuses it moves through, no-op elsewhere?)
# As Cinder's volume API: reserve available->attaching; unreserve attaching->available (a no-op
# otherwise); attach from available or attaching to in-use; begin_detaching in-use->detaching;
# roll_detaching detaching->in-use (a no-op otherwise); detach from in-use or detaching to available.
ACTIONS: dict[str, tuple[frozenset[VolumeStatus], dict[VolumeStatus, tuple[VolumeStatus, ...]], bool]] = {
    "reserve": (frozenset({V.AVAILABLE}), {V.AVAILABLE: (V.ATTACHING,)}, False),
    "unreserve": (frozenset({V.ATTACHING}), {V.ATTACHING: (V.AVAILABLE,)}, True),
    "attach": (frozenset({V.AVAILABLE, V.ATTACHING}), {V.AVAILABLE: (V.ATTACHING, V.IN_USE), V.ATTACHING: (V.IN_USE,)}, False),
    "begin_detaching": (frozenset({V.IN_USE}), {V.IN_USE: (V.DETACHING,)}, False),
    "roll_detaching": (frozenset({V.DETACHING}), {V.DETACHING: (V.IN_USE,)}, True),
    "detach": (frozenset({V.IN_USE, V.DETACHING}), {V.IN_USE: (V.DETACHING, V.AVAILABLE), V.DETACHING: (V.AVAILABLE,)}, False),
}


def status_path(action: str, current: VolumeStatus, name: str) -> tuple[VolumeStatus, ...]:
    """The statuses ``action`` moves a volume in ``current`` through (empty: nothing to do);
    Conflict naming the status and the accepted ones when the action cannot start there."""
    starts, paths, noop_elsewhere = ACTIONS[action]
    if current in starts:
        return paths[current]
    if noop_elsewhere:
        return ()
    raise Conflict(
        f"volume {name!r} is {current.value}; os-{action} accepts a volume that is "
        f"{' or '.join(sorted(s.value for s in starts))}",
        volume=name, status=current.value,
    )  # fmt: skip
