"""CHAP secrets in the shared catalog, sealed with the key every API replica holds.

Each replica keeps ``storage.exports.secrets`` (a 0600 file) on its own disk, so a second replica
could not answer ``connection_info`` for an export the first one made. With ``[cluster]
secrets_key_file`` (the same 32 random bytes on every replica, like Keystone's fernet keys:
``head -c 32 /dev/urandom > /etc/storage/secrets.key; chmod 600``) the secrets live in the
catalog's ``export_secrets`` table instead, AES-256-GCM sealed, the volume id bound as associated
data: a database dump or a backup of the catalog holds no usable secret. A secret still in the
local file (made before the key was configured) is moved into the catalog the first time it is read.
Same interface as ExportSecrets; nothing here logs a secret.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from storage.catalog.export_secrets import ExportSecretRow
from storage.errors import DataCorruption, InvalidInput
from storage.exports.secrets import ExportSecrets
from storage.logs import redact
from storage.paths import require_private

KEY_BYTES = 32
PREFIX = "v1:"
MAX_SECRET = 255  # bytes; a CHAP secret is 12-16 characters, iSCSI allows at most 255


def read_key(path: Path) -> bytes:
    """The shared key: a regular file of exactly 32 bytes (raw) or 64 hex digits, mode 600."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidInput(f"[cluster] secrets_key_file {str(path)!r} does not exist; accepted: a file of 32 random "
                           "bytes, the same on every API replica (head -c 32 /dev/urandom > FILE; chmod 600 FILE)",
                           field="secrets_key_file") from None  # fmt: skip
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"[cluster] secrets_key_file {str(path)!r} is not a regular file", field="secrets_key_file")
    require_private(path, st.st_mode, "[cluster] secrets_key_file")
    with open(path, "rb") as f:
        raw = f.read(KEY_BYTES * 2 + 2)
    text = raw.strip()
    if len(raw) == KEY_BYTES:
        return raw
    if len(text) == KEY_BYTES * 2:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise InvalidInput(f"[cluster] secrets_key_file {str(path)!r} holds {len(raw)} bytes; accepted: exactly 32 raw "
                       "bytes or 64 hex digits", field="secrets_key_file")  # fmt: skip


def seal(key: bytes, volume_id: str, secret: str) -> str:
    data = secret.encode()
    if not data or len(data) > MAX_SECRET:
        raise InvalidInput(f"a CHAP secret of {len(data)} bytes is not accepted; accepted: 1 to {MAX_SECRET} bytes")
    nonce = os.urandom(12)
    return PREFIX + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, data, volume_id.encode())).decode()


def unseal(key: bytes, volume_id: str, sealed: str) -> str:
    if not sealed.startswith(PREFIX):
        raise DataCorruption(f"the sealed CHAP secret of volume {volume_id} has an unknown format; accepted: {PREFIX}...")
    try:
        blob = base64.b64decode(sealed[len(PREFIX):], validate=True)
        return AESGCM(key).decrypt(blob[:12], blob[12:], volume_id.encode()).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise DataCorruption(
            f"the CHAP secret of volume {volume_id} in the catalog does not open with [cluster] secrets_key_file: "
            "every API replica must hold the same key file"
        ) from None


class CatalogSecrets:
    """ExportSecrets' interface over the catalog (``local``: the file a secret may still be in)."""

    def __init__(self, catalog: object, key_path: Path, local: ExportSecrets) -> None:
        self._catalog = catalog
        self._key = read_key(key_path)
        self.local = local
        self.path = f"the catalog (export_secrets, sealed with {key_path})"

    def get(self, key: str) -> str | None:
        with self._catalog.session() as s:  # type: ignore[attr-defined]
            row = s.get(ExportSecretRow, key)
            sealed = row.sealed if row is not None else None
        if sealed is not None:
            secret = unseal(self._key, key, sealed)
        else:
            secret = self.local.get(key)
            if secret is None:
                return None
            self.put(key, secret)  # made before the key was configured: moved into the catalog
            self.local.delete(key)
        redact.remember(secret)
        return secret

    def put(self, key: str, secret: str) -> None:
        redact.remember(secret)
        sealed = seal(self._key, key, secret)
        with self._catalog.session() as s:  # type: ignore[attr-defined]
            row = s.get(ExportSecretRow, key)
            if row is None:
                s.add(ExportSecretRow(volume_id=key, sealed=sealed))
            else:
                row.sealed = sealed

    def delete(self, key: str) -> None:
        with self._catalog.session() as s:  # type: ignore[attr-defined]
            row = s.get(ExportSecretRow, key)
            if row is not None:
                s.delete(row)
        self.local.delete(key)

    def keys(self) -> list[str]:
        with self._catalog.session() as s:  # type: ignore[attr-defined]
            ours = set(s.scalars(select(ExportSecretRow.volume_id)))
        return sorted(ours | set(self.local.keys()))
