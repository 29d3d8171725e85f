"""Key files, key derivation and AES-256-GCM (the only module that touches key material).

A key file holds 32 random bytes as 64 hex digits and a newline, mode 0600. From it and
the repository's salt, HKDF-SHA256 derives three independent keys: the chunk-id key (for
keyed content addresses: keyed BLAKE3 since format version 3, HMAC-SHA256 before), the
encryption key (AES-256-GCM) and a key check value stored in the repository config so a
wrong key is reported before anything is read.

Content addresses (``HASHES``): a repository records its hash in its config. New ones use
BLAKE3 (plain) or keyed BLAKE3 (encrypted): cryptographic, about 4x faster than SHA-256 per
core here, and it releases the GIL on large buffers so hashing threads use every core.
Repositories written before (format 1 and 2) keep SHA-256 / HMAC-SHA256.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.logs import redact
from storage.errors import AuthenticationFailed, Conflict, DataCorruption, InvalidInput, NotFound, Unsupported
from storage.paths import private_dir

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
INFO_CHUNK_ID = b"storage-backup/v1/chunk-id"
INFO_ENCRYPTION = b"storage-backup/v1/encryption"
INFO_KEY_CHECK = b"storage-backup/v1/key-check"
INFO_CHUNK_ID_BLAKE3 = b"storage-backup/v3/chunk-id-blake3"  # a separate key for keyed BLAKE3
# content-address hashes: name -> keyed (encrypted repositories use a keyed one)
HASHES = {"sha256": False, "hmac-sha256": True, "blake3": False, "keyed-blake3": True}
PLAIN_HASH, KEYED_HASH = "blake3", "keyed-blake3"  # what new repositories use


def create_key_file(path: str | os.PathLike[str]) -> Path:
    """Write a new random key to path (mode 0600); refuse to overwrite an existing file."""
    target = Path(path)
    private_dir(target.parent)  # 0700 when this creates it
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"key file {str(target)!r} exists already; choose a new path (keys are never overwritten)") from None
    key = secrets.token_bytes(KEY_BYTES).hex()
    redact.remember(key)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
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
    redact.remember(text)  # a key (or whatever the file holds) is never on a log line
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

    id_key: bytes = field(repr=False)  # secrets: never in a repr (logs, tracebacks)
    enc_key: bytes = field(repr=False)
    hash: str = "hmac-sha256"  # the repository's keyed content-address hash
    _aead: AESGCM = field(init=False, repr=False, compare=False)  # one cipher object, reused by every thread

    def __post_init__(self) -> None:
        object.__setattr__(self, "_aead", AESGCM(self.enc_key))

    @classmethod
    def from_master(cls, master: bytes, salt: bytes, expected_check: str, key_file: str, hash_name: str = KEYED_HASH) -> "RepoKeys":
        if not hmac.compare_digest(key_check_value(master, salt), expected_check):
            raise AuthenticationFailed(
                f"key file {key_file!r} is not the key of this repository (key check value differs); "
                "pass the key file the repository was created with",
                field="key_file",
            )
        check_hash(hash_name, keyed=True)
        info = INFO_CHUNK_ID_BLAKE3 if hash_name == "keyed-blake3" else INFO_CHUNK_ID
        return cls(derive(master, salt, info), derive(master, salt, INFO_ENCRYPTION), hash_name)

    def chunk_id(self, data: bytes | memoryview) -> str:
        if self.hash == "keyed-blake3":
            return blake3.blake3(data, key=self.id_key).hexdigest()
        return hmac.new(self.id_key, data, hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: bytes | memoryview, aad: bytes, *, header: bytes = b"") -> bytearray:
        """header + nonce + ciphertext + tag, the cipher writing straight into the one buffer
        (no joins: each cost a copy of the chunk)."""
        nonce = os.urandom(NONCE_BYTES)
        start = len(header) + NONCE_BYTES
        out = bytearray(start + len(plaintext) + TAG_BYTES)
        out[: len(header)] = header
        out[len(header): start] = nonce
        self._aead.encrypt_into(nonce, plaintext, aad, memoryview(out)[start:])
        return out

    def decrypt(self, blob: bytes | memoryview, aad: bytes, what: str) -> bytes:
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DataCorruption(f"{what} is truncated ({len(blob)} bytes, less than nonce + tag)")
        view = memoryview(blob)  # no copies of the sealed body: the cipher reads the buffer as it is
        try:
            return self._aead.decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DataCorruption(f"{what} failed authentication (AES-GCM tag mismatch): corrupt or not from this repository") from None


def check_hash(hash_name: str, *, keyed: bool) -> None:
    """A repository's hash must be known and keyed exactly when the repository is encrypted."""
    if hash_name not in HASHES:
        raise Unsupported(f"content hash {hash_name!r} is not supported by this program; accepted: {', '.join(HASHES)}")
    if HASHES[hash_name] != keyed:
        kind = "an encrypted" if keyed else "a plain"
        want = ", ".join(h for h, k in HASHES.items() if k == keyed)
        raise DataCorruption(f"content hash {hash_name!r} does not fit {kind} repository; accepted: {want}")


def plain_chunk_id(data: bytes | memoryview, hash_name: str = PLAIN_HASH) -> str:
    return chunk_id_function(hash_name, None)(data)


def chunk_id_function(hash_name: str, keys: RepoKeys | None) -> Callable[[bytes | memoryview], str]:
    """The content-address function of a repository (plain hash, or the keys' keyed one)."""
    check_hash(hash_name, keyed=keys is not None)
    if keys is not None:
        return keys.chunk_id
    return blake3_hex if hash_name == "blake3" else sha256_hex


def blake3_hex(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()
