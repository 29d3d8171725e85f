"""The repository format, version 3 (documented in docs/backup-format.md).

Objects under the repository prefix:
  config                      JSON, plain: format version, chunk size, hash, compression, encryption
  packs/<pack-id>             sealed chunks (flag byte + payload each) concatenated
  index/<pack-id>             which chunk lies where in the pack; same envelope as a manifest
  chunks/<id[:2]>/<id>        version 1 only: one chunk per object (still read, never written)
  manifests/<backup-id>       one backup, written last: same envelope as a chunk around zstd'd JSON
  locks/<lock-id>             JSON lock records (see storage.backup.locks)
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage.backup import compression, crypto
from storage.backup.crypto import RepoKeys, plain_chunk_id
from storage.errors import DataCorruption, InvalidInput, Unsupported

FORMAT_NAME = "storage-backup"
FORMAT_VERSION = 3  # 3: BLAKE3 content addresses for new repositories (2: packs, 1: chunk objects)
PACKS_VERSION = 2  # the first version with packs: what writing into a version-1 repository upgrades it to
CONFIG_OBJECT = "config"
CHUNKS_DIR = "chunks/"
PACKS_DIR = "packs/"
INDEX_DIR = "index/"
MANIFESTS_DIR = "manifests/"
LOCKS_DIR = "locks/"
QUARANTINE_DIR = "quarantine/"
FLAG_ENCRYPTED = 0x80
FLAG_COMPRESSION_MASK = 0x7F
MIN_CHUNK = 64 * 1024
MAX_CHUNK = 64 * 1024 * 1024
ENCRYPTION_ALGORITHM = "aes-256-gcm"
KDF = "hkdf-sha256"


@dataclass(frozen=True)
class EncryptionParams:
    algorithm: str
    kdf: str
    salt: str  # hex
    key_check: str  # hex, first 16 bytes of HKDF(key, salt, "storage-backup/v1/key-check")


@dataclass(frozen=True)
class RepoConfig:
    repository_id: str
    chunk_size: int
    hash: str  # "blake3" / "keyed-blake3" (version 3), "sha256" / "hmac-sha256" (older repositories)
    compression: str
    compression_level: int
    encryption: EncryptionParams | None
    created_at: str
    version: int = FORMAT_VERSION

    @classmethod
    def new(cls, repository_id: str, chunk_size: int, compression_name: str, level: int, encryption_check: "tuple[str, str] | None") -> "RepoConfig":
        check_chunk_size(chunk_size)
        compression.check_compression(compression_name, level)
        enc = None
        if encryption_check is not None:
            salt, check = encryption_check
            enc = EncryptionParams(ENCRYPTION_ALGORITHM, KDF, salt, check)
        return cls(
            repository_id=repository_id,
            chunk_size=chunk_size,
            hash=crypto.KEYED_HASH if enc else crypto.PLAIN_HASH,
            compression=compression_name,
            compression_level=level,
            encryption=enc,
            created_at=iso_now(),
        )

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": self.version,
            "repository_id": self.repository_id,
            "chunk_size": self.chunk_size,
            "hash": self.hash,
            "compression": self.compression,
            "compression_level": self.compression_level,
            "encryption": None if self.encryption is None else dict(self.encryption.__dict__),
            "created_at": self.created_at,
        }
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> "RepoConfig":
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT_NAME:
                raise ValueError("format")
            version = int(doc["version"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidInput(f"{where} is not a backup repository (its config object is not a {FORMAT_NAME} config)") from None
        if version > FORMAT_VERSION:
            raise Unsupported(
                f"repository {where} has format version {version}, newer than this program supports "
                f"({FORMAT_VERSION}); upgrade storage to use it"
            )
        try:
            enc = doc.get("encryption")
            config = cls(
                repository_id=str(doc["repository_id"]),
                chunk_size=int(doc["chunk_size"]),
                hash=str(doc["hash"]),
                compression=str(doc["compression"]),
                compression_level=int(doc.get("compression_level", 3)),
                encryption=None if not enc else EncryptionParams(**enc),
                created_at=str(doc.get("created_at", "")),
                version=version,
            )
        except (KeyError, TypeError, ValueError):
            raise DataCorruption(f"config object of repository {where} is missing fields or has wrong types") from None
        crypto.check_hash(config.hash, keyed=config.encryption is not None)
        return config


def check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK or chunk_size & (chunk_size - 1):
        raise InvalidInput(
            f"chunk size {chunk_size} is not accepted; accepted: a power of two from {MIN_CHUNK} (64K) to {MAX_CHUNK} (64M)",
            field="chunk_size",
        )


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_salt() -> str:
    return secrets.token_bytes(32).hex()


def chunk_object_name(chunk_id: str) -> str:
    return f"{CHUNKS_DIR}{chunk_id[:2]}/{chunk_id}"


def manifest_object_name(backup_id: str) -> str:
    return f"{MANIFESTS_DIR}{backup_id}"


def pack_object_name(pack_id: str) -> str:
    return f"{PACKS_DIR}{pack_id}"


def index_object_name(pack_id: str) -> str:
    return f"{INDEX_DIR}{pack_id}"


def quarantine_object_name(pack_id: str) -> str:
    return f"{QUARANTINE_DIR}{pack_id}"


# -- the object envelope shared by chunks and manifests ------------------------------------


def chunk_aad(flag: int, chunk_id: str) -> bytes:
    return bytes([flag]) + b"chunk:" + chunk_id.encode()


def manifest_aad(flag: int, backup_id: str) -> bytes:
    return bytes([flag]) + b"manifest:" + backup_id.encode()


def index_aad(flag: int, pack_id: str) -> bytes:
    return bytes([flag]) + b"index:" + pack_id.encode()


def quarantine_aad(flag: int, pack_id: str) -> bytes:
    return bytes([flag]) + b"quarantine:" + pack_id.encode()


def seal(plain: bytes | memoryview, cfg: RepoConfig, keys: RepoKeys | None, aad_of: Any, *, level: int | None = None) -> bytes:
    """Encode plaintext as an object body: flag byte + (zstd|raw) payload, encrypted when keys are given."""
    flag, payload = compression.compress(plain, cfg.compression, cfg.compression_level if level is None else level)
    if keys is None:
        return bytes([flag]) + bytes(payload)
    flag |= FLAG_ENCRYPTED
    return keys.encrypt(payload, aad_of(flag), header=bytes([flag]))  # type: ignore[return-value]  # a bytearray: same bytes, no join


def unseal(body: bytes | memoryview, keys: RepoKeys | None, aad_of: Any, expected_size: int | None, what: str,
           *, borrow: bool = False) -> bytes:
    """Decode an object body (decrypt + verify tag, decompress); raise DataCorruption on any mismatch.
    borrow=True: a plain raw body comes back as a view into body (see compression.decompress)."""
    if not len(body):
        raise DataCorruption(f"{what} is empty")
    flag = body[0]
    payload: Any = memoryview(body)[1:]
    if flag & FLAG_ENCRYPTED:
        if keys is None:
            raise DataCorruption(f"{what} is encrypted but the repository config says it is not")
        payload = keys.decrypt(payload, aad_of(flag), what)
    elif keys is not None:
        raise DataCorruption(f"{what} is not encrypted in an encrypted repository")
    return compression.decompress(flag & FLAG_COMPRESSION_MASK, payload, expected_size, borrow=borrow)


def content_id(data: bytes | memoryview, keys: RepoKeys | None, hash_name: str = crypto.PLAIN_HASH) -> str:
    """The content address of a chunk: the keys' keyed hash, else the plain hash_name."""
    return plain_chunk_id(data, hash_name) if keys is None else keys.chunk_id(data)


# -- manifests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkRef:
    """A stored chunk: its content address and its stored (object) size."""

    id: str
    stored_size: int


@dataclass
class Manifest:
    backup_id: str
    repository_id: str
    size: int
    chunk_size: int
    chunks: list[ChunkRef | None]  # None = hole or all-zero chunk
    created_at: str
    completed_at: str
    volume_id: str | None = None
    volume_name: str | None = None
    source: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    snapshot_id: str | None = None
    version: int = FORMAT_VERSION

    def chunk_length(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def referenced(self) -> set[str]:
        return {c.id for c in self.chunks if c is not None}

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT_NAME,
            "version": self.version,
            "backup_id": self.backup_id,
            "repository_id": self.repository_id,
            "name": self.name,
            "volume_id": self.volume_id,
            "volume_name": self.volume_name,
            "source": self.source,
            "snapshot_id": self.snapshot_id,
            "labels": self.labels,
            "size": self.size,
            "chunk_size": self.chunk_size,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "chunks": encode_chunk_list(self.chunks),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, what: str) -> "Manifest":
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT_NAME:
                raise ValueError("format")
        except (ValueError, AttributeError):
            raise DataCorruption(f"{what} is not a {FORMAT_NAME} manifest") from None
        if int(doc.get("version", 0)) > FORMAT_VERSION:
            raise Unsupported(f"{what} has format version {doc.get('version')}, newer than this program supports ({FORMAT_VERSION})")
        try:
            m = cls(
                backup_id=str(doc["backup_id"]),
                repository_id=str(doc["repository_id"]),
                size=int(doc["size"]),
                chunk_size=int(doc["chunk_size"]),
                chunks=decode_chunk_list(doc["chunks"]),
                created_at=str(doc["created_at"]),
                completed_at=str(doc["completed_at"]),
                volume_id=doc.get("volume_id"),
                volume_name=doc.get("volume_name"),
                source=doc.get("source"),
                name=doc.get("name"),
                labels=dict(doc.get("labels") or {}),
                snapshot_id=doc.get("snapshot_id"),
                version=int(doc["version"]),
            )
        except (KeyError, TypeError, ValueError):
            raise DataCorruption(f"{what} is missing fields or has wrong types") from None
        expected = -(-m.size // m.chunk_size)
        if len(m.chunks) != expected:
            raise DataCorruption(f"{what} lists {len(m.chunks)} chunks; a {m.size}-byte image in {m.chunk_size}-byte chunks has {expected}")
        return m


def encode_chunk_list(chunks: list[ChunkRef | None]) -> list[Any]:
    """Compact list: [id, stored_size] per stored chunk, an integer n for a run of n zero chunks."""
    out: list[Any] = []
    for ref in chunks:
        if ref is None:
            if out and isinstance(out[-1], int):
                out[-1] += 1
            else:
                out.append(1)
        else:
            out.append([ref.id, ref.stored_size])
    return out


def decode_chunk_list(items: list[Any]) -> list[ChunkRef | None]:
    chunks: list[ChunkRef | None] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            if item <= 0:
                raise ValueError("zero run")
            chunks.extend([None] * item)
        else:
            cid, stored = item
            chunks.append(ChunkRef(str(cid), int(stored)))
    return chunks
