"""Validate placement hints from the CLI, the API and the library (bounded before use)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from storage.errors import InvalidInput
from storage.names import LABEL_RE
from storage.scheduler.models import CapabilityValue, Hints

ZONE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
MAX_ITEMS = 16
# Capabilities a request may require: the fields of backends.volume.base.Capabilities (but
# size_granularity) plus "reflink" (copy_method == "reflink").
BOOL_CAPABILITIES = ("thin", "snapshots", "clone", "revert", "online_extend", "changed_ranges", "reflink")
STR_CAPABILITIES = ("copy_method",)
CAPABILITIES = BOOL_CAPABILITIES + STR_CAPABILITIES
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _capability(key: object, value: object) -> tuple[str, CapabilityValue]:
    if key not in CAPABILITIES:
        raise InvalidInput(
            f"capability {key!r} is not known; accepted: {', '.join(CAPABILITIES)}", field="capabilities"
        )
    if key in STR_CAPABILITIES:
        if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", value):
            raise InvalidInput(f"capability {key}={value!r} is not accepted; accepted: a word such as reflink, copy or cow", field="capabilities")
        return str(key), value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        value = value.lower() in _TRUE
    if not isinstance(value, bool):
        raise InvalidInput(f"capability {key}={value!r} is not accepted; accepted: true or false", field="capabilities")
    return str(key), value


def parse_requirements(items: list[str] | None) -> dict[str, CapabilityValue]:
    """CLI ``--require thin --require copy_method=reflink --require online_extend=false``."""
    out: dict[str, CapabilityValue] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        k, v = _capability(key, value if sep else True)
        out[k] = v
    return out


def validate_hints(
    *, availability_zone: str | None = None, labels: Mapping[str, str] | None = None,
    capabilities: Mapping[str, object] | None = None, host: str | None = None,
) -> Hints:  # fmt: skip
    if availability_zone is not None and (not isinstance(availability_zone, str) or not ZONE_RE.fullmatch(availability_zone)):
        raise InvalidInput(
            f"availability zone {availability_zone!r} is not accepted; accepted: 1-63 letters, digits, . _ : -",
            field="availability_zone",
        )
    if host is not None and (not isinstance(host, str) or not HOST_RE.fullmatch(host)):
        raise InvalidInput(f"host {host!r} is not accepted; accepted: a host name (letters, digits, . _ -)", field="host")
    for what, items in (("labels", labels), ("capabilities", capabilities)):
        if items is not None and (not isinstance(items, Mapping) or len(items) > MAX_ITEMS):
            raise InvalidInput(f"{what} is not accepted; accepted: at most {MAX_ITEMS} KEY: VALUE pairs", field=what)
    pool_labels: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not LABEL_RE.fullmatch(key) or not isinstance(value, str) or len(value) > 255:
            raise InvalidInput(
                f"pool label {key!r}={value!r} is not accepted; accepted: KEY of letters, digits, . _ / - (max 63) "
                "and a string VALUE up to 255 characters",
                field="labels",
            )
        pool_labels[key] = value
    caps = dict(_capability(k, v) for k, v in (capabilities or {}).items())
    return Hints(availability_zone=availability_zone, labels=pool_labels, capabilities=caps, host=host)
