"""Cinder volume actions of a compute host's attach (the pre-3.27 flow Nova and os-brick use):
``os-initialize_connection`` (200, ``{"connection_info": ...}``: the only answer with the CHAP
secret), ``os-terminate_connection``, ``os-reserve``, ``os-unreserve``, ``os-attach``,
``os-begin_detaching``, ``os-roll_detaching``, ``os-detach`` (202). Bodies as Cinder's schemas
(cinder/api/schemas/volume_actions.py): the keys below only; the connector is checked by
storage.exports.connector."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from storage.errors import InvalidInput
from storage.service import Storage

CONNECTION_ACTIONS: dict[str, frozenset[str]] = {
    "os-initialize_connection": frozenset({"connector"}),
    "os-terminate_connection": frozenset({"connector"}),
    "os-reserve": frozenset(),
    "os-unreserve": frozenset(),
    "os-attach": frozenset({"instance_uuid", "mountpoint", "host_name", "mode"}),
    "os-begin_detaching": frozenset(),
    "os-roll_detaching": frozenset(),
    "os-detach": frozenset({"attachment_id"}),
}
_NO_ARGS = {"os-reserve": "reserve", "os-unreserve": "unreserve", "os-begin_detaching": "begin_detaching",
            "os-roll_detaching": "roll_detaching"}  # fmt: skip


def run(st: Storage, volume_id: str, action: str, raw: object, args: dict[str, Any]) -> JSONResponse | None:
    """Run one connection action (args already checked against CONNECTION_ACTIONS); a response
    for os-initialize_connection, None for the 202 actions."""
    if action in ("os-initialize_connection", "os-terminate_connection"):
        if not isinstance(raw, dict) or "connector" not in args:
            raise InvalidInput(f"{action} needs a connector; accepted: {{\"connector\": {{os-brick connector properties}}}}",
                               field="connector")  # fmt: skip
        if action == "os-terminate_connection":
            st.connections.terminate(volume_id, args["connector"])
            return None
        return JSONResponse({"connection_info": st.connections.initialize(volume_id, args["connector"])}, status_code=200)
    if action in _NO_ARGS:
        if raw not in (None, {}):
            raise InvalidInput(f"{action} takes no arguments; accepted: null or {{}}", field=action)
        getattr(st.connections, _NO_ARGS[action])(volume_id)
    elif action == "os-attach":
        if not isinstance(raw, dict):
            raise InvalidInput("os-attach needs an object with mountpoint and instance_uuid or host_name", field="os-attach")
        st.connections.attach(volume_id, mountpoint=args.get("mountpoint"), instance_uuid=args.get("instance_uuid"),
                              host_name=args.get("host_name"), mode=args.get("mode", "rw"))  # type: ignore[arg-type]  # fmt: skip
    elif action == "os-detach":
        if raw is not None and not isinstance(raw, dict):
            raise InvalidInput("os-detach takes null or {\"attachment_id\": ...}", field="os-detach")
        attachment_id = args.get("attachment_id")
        if attachment_id is not None and (not isinstance(attachment_id, str) or len(attachment_id) > 36):
            raise InvalidInput("attachment_id is not accepted; accepted: an attachment id (a UUID)", field="attachment_id")
        st.connections.detach(volume_id, attachment_id)
    return None
