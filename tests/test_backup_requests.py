"""The fixed requests of an incremental backup into Swift, counted in the proxy's own access log.

Each request costs a round trip and about 16 ms of Swift CPU whatever the data: a backup asks
for the segments container once (its stores share the answer), reads no lock object of its
own, and records the chunk cache from what it already read (no second listing of manifests/,
no second GET of gc-generation). The next backup still trusts that cache.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest

import storage
from storage.backup.cache import ChunkCache
from tests.backup_helpers import MIB, make_image, overwrite

pytestmark = pytest.mark.swift


def _requests(log: Path, container: str, since: int) -> list[tuple[str, str]]:
    """(method, decoded path) of the proxy's access lines naming container, from byte offset since."""
    out = []
    with open(log, "rb") as fh:
        fh.seek(since)
        for raw in fh.read().decode(errors="replace").splitlines():
            fields = raw.split("proxy-server:", 1)[-1].split()  # client ip, remote ip, time, method, path, ...
            if "proxy-server:" not in raw or len(fields) < 6 or not fields[4].startswith("/v1/"):
                continue
            method, path = fields[3], unquote(unquote(fields[4]))
            if f"/{container}" in path:
                out.append((method, path))
    return out


def _settled(log: Path, container: str, since: int) -> list[tuple[str, str]]:
    """The lines of one backup, once the lock DELETE (its last request) is in the log."""
    deadline = time.monotonic() + 20
    while True:
        got = _requests(log, container, since)
        if any(m == "DELETE" and "/locks/" in p for m, p in got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_an_incremental_asks_swift_nothing_twice(objects_config: Path, swift_server: object, tmp_path: Path) -> None:
    log = Path(swift_server.dir) / "logs" / "proxy.log"  # type: ignore[attr-defined]
    container = f"req-{uuid.uuid4().hex[:8]}"
    url = f"swift://swift@{container}"
    image = make_image(tmp_path / "img", 4 * MIB, seed=7)
    with storage.open(objects_config) as st:
        st.backups.create(str(image), repository=url)
        overwrite(image, MIB + 5, b"changed")
        since = log.stat().st_size
        second = st.backups.create(str(image), repository=url)
        assert second.new_chunk_count == 1 and second.dedup_chunk_count == 3
        got = _settled(log, container, since)
        heads_of_segments = [p for m, p in got if m == "HEAD" and p.split("?")[0].endswith(f"/{container}_segments")]
        lock_reads = [p for m, p in got if m == "GET" and "/locks/" in p and "?" not in p]
        manifest_listings = [p for m, p in got if m == "GET" and "prefix=manifests/" in p]
        generation_reads = [p for m, p in got if m == "GET" and p.endswith("/gc-generation")]
        assert len(heads_of_segments) == 1, got
        assert lock_reads == [], got  # the only lock is this backup's own: not read back
        assert len(manifest_listings) == 1 and len(generation_reads) == 1, got
        # the cache recorded from those reads is trusted by the next backup (no rebuild from the indexes)
        repo = st.backups.open_repository(url)
        cache = ChunkCache(st.backups.cache_root, repo)
        store = repo.clone_store()
        try:
            known = cache.load(store)
        finally:
            store.close()
        assert not cache.rebuilt and len(known) == 5
