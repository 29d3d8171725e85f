"""Helpers for the backup tests: test images with data, zero chunks and holes; repository pokes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import storage
from storage.backup import format as fmt
from storage.backup.repository import Repository

MIB = 1024 * 1024


def make_image(path: Path, size: int, *, seed: int = 1, data_ranges: list[tuple[int, int]] | None = None,
               zero_ranges: list[tuple[int, int]] | None = None) -> Path:
    """A sparse image: random data in data_ranges, explicit zero bytes in zero_ranges, holes elsewhere."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, length in data_ranges if data_ranges is not None else [(0, size)]:
            f.seek(off)
            f.write(rng.randbytes(length))
        for off, length in zero_ranges or []:
            f.seek(off)
            f.write(bytes(length))
    return path


def overwrite(path: Path | str, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def same_bytes(a: Path | str, b: Path | str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MIB), fb.read(MIB)
            if x != y:
                return False
            if not x:
                return True


def open_repo(st: storage.Storage, url: str | None = None, key_file: str | None = None) -> Repository:
    return st.backups.open_repository(url, key_file=key_file)


def chunk_ids(repo: Repository) -> list[str]:
    return sorted(c.id for c in repo.list_chunks())


def _locate(repo: Repository, chunk_id: str):  # type: ignore[no-untyped-def]
    index = repo.load_index(repo.location.store)
    return index, index.locations[chunk_id]


def delete_chunk(repo: Repository, chunk_id: str) -> None:
    """Lose one chunk: drop its entry from its pack's index (or delete a version-1 chunk object)."""
    index, loc = _locate(repo, chunk_id)
    if loc.pack_id is None:
        repo.location.store.delete_object(repo.container, repo.object_name(loc.object))
        return
    pack_index = index.packs[loc.pack_id].index
    assert pack_index is not None
    pack_index.entries = [e for e in pack_index.entries if e.chunk_id != chunk_id]
    repo.put_index(repo.location.store, pack_index)


def flip_byte(repo: Repository, chunk_id: str, position: int = -1) -> None:
    """Rewrite the chunk's pack with one bit of the chunk flipped (bit rot the store does not notice)."""
    _index, loc = _locate(repo, chunk_id)
    name = repo.object_name(loc.object)
    body = bytearray(repo.location.store.get_bytes(repo.container, name))
    body[loc.offset + (position % loc.length)] ^= 0x01
    repo.location.store.put_object(repo.container, name, bytes(body))


def stored_chunk_body(repo: Repository, chunk_id: str) -> bytes:
    """The sealed body of one chunk, read from its pack."""
    _index, loc = _locate(repo, chunk_id)
    return repo.read_range(repo.location.store, loc.object, loc.offset, loc.length)


def swift_backup_config(data_dir: Path, swift_options: dict[str, Any], url: str, *, extra: str = "", **backup: Any) -> Path:
    """A config with the Swift store as ``swift`` and url as the default repository (1 MiB chunks
    and packs unless given); extra is appended (pools, say)."""
    cfg = data_dir / "swift-backup.toml"
    store = "\n".join(f"{k} = {json.dumps(v)}" for k, v in swift_options.items())
    settings = {"repository": url, "pack_size": "1M", "stream_pack_size": "1M", "chunk_size": "1M", **backup}
    cfg.write_text(
        f'data_dir = "{data_dir}"\n[backup]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        + f'[object_stores.swift]\ntype = "swift"\n{store}\n' + extra
    )
    return cfg
