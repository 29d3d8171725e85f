"""iSCSI names and CHAP credentials: validation, the target naming scheme, generation (pure).

Naming scheme (docs/iscsi.md): one target per exported volume,
``<iqn_prefix>:volume-<volume uuid>``, data on LUN 1 (tgt) or LUN 0 (LIO). The default prefix
is ``iqn.2026-11.host.storage``; set ``[export] iqn_prefix`` to a name under a domain you own.
"""

from __future__ import annotations

import re
import secrets
import string

from storage.errors import InvalidInput

DEFAULT_IQN_PREFIX = "iqn.2026-11.host.storage"
IQN_MAX_BYTES = 223  # RFC 3720 3.2.6.1

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_IQN_RE = re.compile(rf"^iqn\.\d{{4}}-(0[1-9]|1[0-2])\.{_LABEL}(?:\.{_LABEL})*(?::[a-z0-9.:_-]+)?$", re.IGNORECASE)
_IQN_PREFIX_RE = re.compile(rf"^iqn\.\d{{4}}-(0[1-9]|1[0-2])\.{_LABEL}(?:\.{_LABEL})*(?::[a-z0-9.:_-]+)?$", re.IGNORECASE)
_EUI_RE = re.compile(r"^eui\.[0-9a-f]{16}$", re.IGNORECASE)
_NAA_RE = re.compile(r"^naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})$", re.IGNORECASE)
ACCEPTED_IQN = (
    "iqn.YYYY-MM.reversed.domain[:unique-id] (letters, digits, '-', '.', ':', '_'), "
    "eui. plus 16 hex digits, or naa. plus 16 or 32 hex digits; at most 223 characters"
)

CHAP_SECRET_MIN = 12
CHAP_SECRET_MAX = 16
_CHAP_CHARS = string.ascii_letters + string.digits
_CHAP_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")
ACCEPTED_CHAP_SECRET = f"{CHAP_SECRET_MIN}-{CHAP_SECRET_MAX} printable ASCII characters without spaces"
ACCEPTED_CHAP_USER = "1-64 characters: letters, digits and . _ @ : -, starting with a letter or digit"


def is_valid_iscsi_name(name: str) -> bool:
    if not isinstance(name, str) or not name or len(name.encode()) > IQN_MAX_BYTES:
        return False
    return bool(_IQN_RE.match(name) or _EUI_RE.match(name) or _NAA_RE.match(name))


def validate_initiator(name: str) -> str:
    """Return name if it is a valid iSCSI initiator name, else raise InvalidInput naming it."""
    if not is_valid_iscsi_name(name):
        raise InvalidInput(f"initiator name {name!r} is not a valid iSCSI name; accepted: {ACCEPTED_IQN}", field="initiators")
    return name


def validate_initiators(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Validated, de-duplicated initiator names in the given order."""
    out: list[str] = []
    for name in names or ():
        validate_initiator(name)
        if name not in out:
            out.append(name)
    return tuple(out)


def validate_iqn_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _IQN_PREFIX_RE.match(prefix) or len(prefix) > IQN_MAX_BYTES - 50:
        raise InvalidInput(
            f"export iqn_prefix {prefix!r} is not accepted; accepted: iqn.YYYY-MM.reversed.domain[:id], "
            "e.g. iqn.2026-11.com.example",
            field="iqn_prefix",
        )
    return prefix


def target_iqn(prefix: str, volume_id: str) -> str:
    """The target name of a volume: ``<prefix>:volume-<uuid>`` (``<prefix>.volume-`` never)."""
    name = f"{validate_iqn_prefix(prefix)}:volume-{volume_id}"
    assert is_valid_iscsi_name(name), name
    return name


def unit_serial(volume_id: str) -> str:
    """SCSI unit serial number shown to initiators: the volume UUID without dashes (32 hex)."""
    return volume_id.replace("-", "")


def validate_chap_secret(secret: str) -> str:
    """Check length and characters; the message never repeats the secret."""
    if not isinstance(secret, str):
        raise InvalidInput(f"CHAP secret is not a string; accepted: {ACCEPTED_CHAP_SECRET}", field="chap_secret")
    if not CHAP_SECRET_MIN <= len(secret) <= CHAP_SECRET_MAX:
        raise InvalidInput(
            f"CHAP secret has {len(secret)} characters; accepted: {ACCEPTED_CHAP_SECRET} "
            "(many initiators refuse other lengths)",
            field="chap_secret",
        )
    if any(not (33 <= ord(c) <= 126) for c in secret):
        raise InvalidInput(
            f"CHAP secret contains a space or a non-printable/non-ASCII character; accepted: {ACCEPTED_CHAP_SECRET}",
            field="chap_secret",
        )
    return secret


def validate_chap_username(username: str) -> str:
    if not isinstance(username, str) or not _CHAP_USER_RE.match(username):
        raise InvalidInput(f"CHAP username {username!r} is not accepted; accepted: {ACCEPTED_CHAP_USER}", field="chap_username")
    return username


def generate_chap_secret(length: int = CHAP_SECRET_MAX) -> str:
    return "".join(secrets.choice(_CHAP_CHARS) for _ in range(length))


def default_chap_username(volume_id: str) -> str:
    """A per-volume username (tgt accounts are global to the daemon, so it must be unique)."""
    return f"vol-{volume_id.replace('-', '')[:20]}"
