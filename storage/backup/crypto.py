"""Key files, key derivation and AES-256-GCM (the only module that touches key material).

A key file holds 32 random bytes as 64 hex digits and a newline, mode 0600. From it and
the repository's salt, HKDF-SHA256 derives three independent keys: the chunk-id key (for
HMAC-SHA256 content addresses), the encryption key (AES-256-GCM) and a key check value
stored in the repository config so a wrong key is reported before anything is read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import AuthenticationFailed, Conflict, DataCorruption, InvalidInput, NotFound
from storage.paths import private_dir

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
INFO_CHUNK_ID = b"storage-backup/v1/chunk-id"
INFO_ENCRYPTION = b"storage-backup/v1/encryption"
INFO_KEY_CHECK = b"storage-backup/v1/key-check"


def create_key_file(path: str | os.PathLike[str]) -> Path:
    """Write a new random key to path (mode 0600); refuse to overwrite an existing file."""
    target = Path(path)
    private_dir(target.parent)  # 0700 when this creates it
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"key file {str(target)!r} exists already; choose a new path (keys are never overwritten)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_bytes(KEY_BYTES).hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return target


def load_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a key file; errors name the file, never its content."""
    source = Path(path)
    try:
        text = source.read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"key file {str(source)!r} does not exist", field="key_file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"key file {str(source)!r} cannot be read: {type(exc).__name__}", field="key_file") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise InvalidInput(
            f"key file {str(source)!r} is not a key; accepted: {KEY_BYTES * 2} hex digits (as written by 'storagectl backup key create')",
            field="key_file",
        )
    return key


def derive(master: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)


def key_check_value(master: bytes, salt: bytes) -> str:
    return derive(master, salt, INFO_KEY_CHECK)[:16].hex()


@dataclass(frozen=True)
class RepoKeys:
    """Keys of one encrypted repository, derived from a key file and the repository salt."""

    id_key: bytes
    enc_key: bytes

    @classmethod
    def from_master(cls, master: bytes, salt: bytes, expected_check: str, key_file: str) -> "RepoKeys":
        if not hmac.compare_digest(key_check_value(master, salt), expected_check):
            raise AuthenticationFailed(
                f"key file {key_file!r} is not the key of this repository (key check value differs); "
                "pass the key file the repository was created with",
                field="key_file",
            )
        return cls(derive(master, salt, INFO_CHUNK_ID), derive(master, salt, INFO_ENCRYPTION))

    def chunk_id(self, data: bytes | memoryview) -> str:
        return hmac.new(self.id_key, data, hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.enc_key).encrypt(nonce, bytes(plaintext), aad)

    def decrypt(self, blob: bytes | memoryview, aad: bytes, what: str) -> bytes:
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DataCorruption(f"{what} is truncated ({len(blob)} bytes, less than nonce + tag)")
        nonce, sealed = bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:])
        try:
            return AESGCM(self.enc_key).decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise DataCorruption(f"{what} failed authentication (AES-GCM tag mismatch): corrupt or not from this repository") from None


def plain_chunk_id(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()
