"""A backup repository: the config, chunk and manifest objects under one container + prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from storage.backup import crypto, format as fmt
from storage.backup.format import ChunkRef, Manifest, RepoConfig
from storage.errors import DataCorruption, InvalidInput, NotFound


class Location(Protocol):
    """What st.objects.open_url(url) returns: a store, a container, a prefix and a clone_store()."""

    store: Any
    container: str
    prefix: str
    url: str

    def clone_store(self) -> Any: ...


@dataclass(frozen=True)
class StoredChunk:
    id: str
    size: int
    last_modified: str | None


class Repository:
    """One repository. Thread use: pass each thread its own store (``clone_store()``)."""

    def __init__(self, location: Location, config: RepoConfig, keys: crypto.RepoKeys | None) -> None:
        self.location = location
        self.config = config
        self.keys = keys
        self.key_file: str | None = None  # the path the keys came from (recorded in the catalog)
        prefix = location.prefix or ""
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        location: Location,
        *,
        key_file: str | None = None,
        create: bool = False,
        chunk_size: int = 1024 * 1024,
        compression: str = "zstd",
        compression_level: int = 3,
        require_encryption: bool = False,
        need_keys: bool = True,
    ) -> "Repository":
        """Open (or with create=True, initialise) the repository at location.

        An encrypted repository needs its key file (else InvalidInput; a wrong one raises
        AuthenticationFailed). require_encryption (an explicit key) refuses a plain repository.
        need_keys=False opens an encrypted repository without its key for listing and deleting.
        """
        prefix = _norm_prefix(location.prefix)
        store = location.store
        try:
            raw = store.get_bytes(location.container, prefix + fmt.CONFIG_OBJECT)
        except NotFound:
            raw = None
        if raw is None:
            if not create:
                raise NotFound(f"no backup repository at {location.url} (no config object); create a backup there first")
            master = crypto.load_key_file(key_file) if key_file else None
            check = None
            if master is not None:
                salt = fmt.new_salt()
                check = (salt, crypto.key_check_value(master, bytes.fromhex(salt)))
            config = RepoConfig.new(str(uuid.uuid4()), chunk_size, compression, compression_level, check)
            store.create_container(location.container)
            store.put_object(location.container, prefix + fmt.CONFIG_OBJECT, config.to_json(), content_type="application/json")
            raw = store.get_bytes(location.container, prefix + fmt.CONFIG_OBJECT)
        config = RepoConfig.from_json(raw, location.url)
        keys = None
        if config.encryption is not None and (key_file or need_keys):
            if not key_file:
                raise InvalidInput(
                    f"repository {location.url} is encrypted; pass its key file (--key-file or backup.key_file)", field="key_file"
                )
            master = crypto.load_key_file(key_file)
            keys = crypto.RepoKeys.from_master(master, bytes.fromhex(config.encryption.salt), config.encryption.key_check, str(key_file))
        elif require_encryption:
            raise InvalidInput(
                f"repository {location.url} is not encrypted, so a key file cannot be used with it; "
                "use a new repository (container or prefix) for encrypted backups",
                field="key_file",
            )
        repo = cls(location, config, keys)
        repo.key_file = str(key_file) if keys is not None and key_file else None
        return repo

    # -- names -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.config.repository_id

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def container(self) -> str:
        return self.location.container

    def object_name(self, relative: str) -> str:
        return self.prefix + relative

    def clone_store(self) -> Any:
        return self.location.clone_store()

    # -- chunks ----------------------------------------------------------------------------
    def chunk_id(self, data: bytes | memoryview) -> str:
        return fmt.content_id(data, self.keys)

    def seal_chunk(self, chunk_id: str, data: bytes | memoryview) -> bytes:
        return fmt.seal(data, self.config, self.keys, lambda flag: fmt.chunk_aad(flag, chunk_id))

    def put_chunk(self, store: Any, chunk_id: str, body: bytes) -> None:
        store.put_object(self.container, self.object_name(fmt.chunk_object_name(chunk_id)), body, length=len(body))

    def open_chunk(self, body: bytes, ref: ChunkRef, length: int) -> bytes:
        """Decode and verify a chunk body: tag (encrypted), size and content address."""
        what = f"chunk {ref.id}"
        data = fmt.unseal(body, self.keys, lambda flag: fmt.chunk_aad(flag, ref.id), length, what)
        if len(data) != length:
            raise DataCorruption(f"{what} holds {len(data)} bytes; the manifest expects {length}", chunk=ref.id)
        if self.chunk_id(data) != ref.id:
            raise DataCorruption(f"{what} does not match its content address (corrupt)", chunk=ref.id)
        return data

    def get_chunk(self, store: Any, ref: ChunkRef, length: int) -> bytes:
        try:
            body = store.get_bytes(self.container, self.object_name(fmt.chunk_object_name(ref.id)))
        except NotFound:
            raise DataCorruption(f"chunk {ref.id} is missing from repository {self.url}", chunk=ref.id) from None
        return self.open_chunk(body, ref, length)

    def delete_chunk(self, store: Any, chunk_id: str) -> None:
        try:
            store.delete_object(self.container, self.object_name(fmt.chunk_object_name(chunk_id)))
        except NotFound:
            pass

    def list_chunks(self, store: Any | None = None) -> Iterator[StoredChunk]:
        store = store or self.location.store
        start = len(self.object_name(fmt.CHUNKS_DIR))
        for info in store.list_objects(self.container, prefix=self.object_name(fmt.CHUNKS_DIR)):
            name = getattr(info, "name", None)
            if name is None:
                continue
            rel = name[start:]
            chunk_id = rel.rsplit("/", 1)[-1]
            if len(chunk_id) == 64:
                yield StoredChunk(chunk_id, int(info.size), info.last_modified)

    # -- manifests -------------------------------------------------------------------------
    def _manifest_aad(self, backup_id: str) -> Any:
        return lambda flag: fmt.manifest_aad(flag, backup_id)

    def write_manifest(self, store: Any, manifest: Manifest) -> Manifest:
        """Store the manifest, then read it back and check it decodes to the same chunk list."""
        body = fmt.seal(manifest.to_json(), self.config, self.keys, self._manifest_aad(manifest.backup_id))
        name = self.object_name(fmt.manifest_object_name(manifest.backup_id))
        store.put_object(self.container, name, body, length=len(body))
        back = self.read_manifest(store, manifest.backup_id)
        if back.chunks != manifest.chunks or back.size != manifest.size:
            raise DataCorruption(f"manifest {manifest.backup_id} read back differs from what was written")
        return back

    def read_manifest(self, store: Any, backup_id: str) -> Manifest:
        what = f"manifest {backup_id}"
        try:
            body = store.get_bytes(self.container, self.object_name(fmt.manifest_object_name(backup_id)))
        except NotFound:
            raise NotFound(f"backup {backup_id} has no manifest in repository {self.url}") from None
        raw = fmt.unseal(body, self.keys, self._manifest_aad(backup_id), None, what)
        manifest = Manifest.from_json(raw, what)
        if manifest.backup_id != backup_id:
            raise DataCorruption(f"{what} names backup {manifest.backup_id}; the object name says {backup_id}")
        return manifest

    def list_manifest_ids(self, store: Any | None = None) -> list[str]:
        store = store or self.location.store
        start = len(self.object_name(fmt.MANIFESTS_DIR))
        out = []
        for info in store.list_objects(self.container, prefix=self.object_name(fmt.MANIFESTS_DIR)):
            name = getattr(info, "name", None)
            if name is not None and "/" not in name[start:]:
                out.append(name[start:])
        return out

    def delete_manifest(self, store: Any, backup_id: str) -> bool:
        try:
            store.delete_object(self.container, self.object_name(fmt.manifest_object_name(backup_id)))
        except NotFound:
            return False
        return True


def _norm_prefix(prefix: str | None) -> str:
    prefix = prefix or ""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"
