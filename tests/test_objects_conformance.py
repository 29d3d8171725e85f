"""One conformance suite for every object store: file, swift and s3 (the last two on the real Swift)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.object.dir.store import DirectoryStore
from backends.object.base import ObjectInfo, ObjectStore, PrefixEntry
from backends.object.s3.store import S3Store
from backends.object.swift.store import SwiftStore
from storage.errors import InvalidInput, NotFound, StorageError

LARGE = 11 * 1024 * 1024 + 12345  # above the swift segment size and the s3 part size of the fixtures


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _make(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> ObjectStore:
    if kind == "file":
        return DirectoryStore({"root": str(tmp_path / "objects")})
    if kind == "swift":
        return SwiftStore(request.getfixturevalue("swift_options"))
    return S3Store(request.getfixturevalue("s3_options"))


@pytest.fixture(params=["file", pytest.param("swift", marks=pytest.mark.swift), pytest.param("s3", marks=pytest.mark.swift)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ObjectStore, str]]:
    st = _make(request.param, tmp_path, request)
    container = f"conf-{uuid.uuid4().hex[:12]}"
    st.create_container(container)
    try:
        yield st, container
    finally:
        _empty_and_delete(st, container)
        st.close()


def _parallel(st: ObjectStore, items: list[Any], work: Any, threads: int = 8) -> None:
    """work(store, item) over items, each thread with its own store clone."""
    chunks = [items[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def run(chunk: list[Any]) -> None:
        mine = st.clone()
        try:
            for item in chunk:
                work(mine, item)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            mine.close()

    pool = [threading.Thread(target=run, args=(c,)) for c in chunks if c]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    if errors:
        raise errors[0]


def _empty_and_delete(st: ObjectStore, container: str) -> None:
    def drop(store: ObjectStore, item: tuple[str, str]) -> None:
        try:
            store.delete_object(*item)
        except NotFound:
            pass

    for c in (container, container + "_segments"):
        try:
            names = [(c, e.name) for e in st.list_objects(c) if isinstance(e, ObjectInfo)]
            _parallel(st, names, drop)
            st.delete_container(c)
        except (NotFound, InvalidInput):
            pass


def _names(entries: Any) -> list[str]:
    return [e.prefix if isinstance(e, PrefixEntry) else e.name for e in entries]


def test_round_trip_bytes_stream_and_metadata(store: tuple[ObjectStore, str]) -> None:
    st, c = store
    data = os.urandom(200_000)  # below the segment size: a simple object whose ETag is its MD5
    info = st.put_object(c, "blob", data, content_type="application/x-test", metadata={"Origin": "conformance"})
    assert (info.size, info.etag) == (len(data), _md5(data))
    assert st.get_bytes(c, "blob") == data
    head = st.head_object(c, "blob")
    assert (head.size, head.etag, head.content_type) == (len(data), _md5(data), "application/x-test")
    assert dict(head.metadata) == {"origin": "conformance"}
    st.put_object(c, "stream", io.BytesIO(data[:1000]), length=1000)
    with st.get_object(c, "stream") as reader:
        assert b"".join(reader) == data[:1000]
    st.put_object(c, "blob", b"replaced")  # overwrite
    assert st.get_bytes(c, "blob") == b"replaced"
    st.copy_object(c, "stream", c, "copy/of stream")
    assert st.get_bytes(c, "copy/of stream") == data[:1000]
    st.delete_object(c, "blob")
    with pytest.raises(NotFound):
        st.get_bytes(c, "blob")
    with pytest.raises(NotFound):
        st.delete_object(c, "blob")


def test_zero_byte_objects(store: tuple[ObjectStore, str]) -> None:
    st, c = store
    assert st.put_object(c, "empty", b"").etag == _md5(b"")
    st.put_object(c, "empty-stream", io.BytesIO(b""), length=0)
    for name in ("empty", "empty-stream"):
        assert st.get_bytes(c, name) == b""
        assert st.head_object(c, name).size == 0
    assert st.get_bytes(c, "empty", (0, 0)) == b""
    with pytest.raises(InvalidInput, match="beyond the end"):
        st.get_bytes(c, "empty", (0, 10))


NAMES = ["a", "a/b", "a/b/c.txt", "dir/file", "ünïcødé/名前.bin", "sp ace/x y", "percent%41", "emoji-😀", "q?x=1&y#z"]


def test_unicode_and_slash_names(store: tuple[ObjectStore, str]) -> None:
    st, c = store
    for name in NAMES:
        st.put_object(c, name, name.encode())
    assert _names(st.list_objects(c)) == sorted(NAMES)
    for name in NAMES:
        assert st.get_bytes(c, name) == name.encode()
        assert st.head_object(c, name).size == len(name.encode())
    assert _names(st.list_objects(c, delimiter="/")) == [
        "a", "a/", "dir/", "emoji-😀", "percent%41", "q?x=1&y#z", "sp ace/", "ünïcødé/",
    ]
    assert _names(st.list_objects(c, prefix="a/", delimiter="/")) == ["a/b", "a/b/"]


def test_range_reads(store: tuple[ObjectStore, str]) -> None:
    st, c = store
    data = os.urandom(5000)
    st.put_object(c, "r", data)
    assert st.get_bytes(c, "r", (0, 10)) == data[:10]
    assert st.get_bytes(c, "r", (1234, 999)) == data[1234:2233]
    assert st.get_bytes(c, "r", (4990, 100)) == data[4990:]  # clipped at the end
    assert st.get_bytes(c, "r", (7, 0)) == b""
    with st.get_object(c, "r", (100, 50)) as reader:
        assert reader.info is not None and reader.info.size == 5000
        assert reader.read() == data[100:150]
    with pytest.raises(InvalidInput, match="beyond the end"):
        st.get_bytes(c, "r", (5000, 1))
    with pytest.raises(InvalidInput, match="offset >= 0"):
        st.get_bytes(c, "r", (-1, 5))


def test_readinto_fills_the_callers_buffer(store: tuple[ObjectStore, str]) -> None:
    """readinto (what a restore reads packs with) returns the same bytes as read: a range, a whole
    object (Swift checks its MD5 at the end), mixed with read() on one reader, and 0 at the end."""
    st, c = store
    data = os.urandom(3 * 1024 * 1024 + 777)
    st.put_object(c, "ri", data)
    buf = bytearray(len(data) + 10)
    with st.get_object(c, "ri", (1000, 2 * 1024 * 1024)) as reader:
        got = 0
        while n := reader.readinto(memoryview(buf)[got:]):
            got += n
        assert got == 2 * 1024 * 1024 and bytes(buf[:got]) == data[1000:1000 + got]
        assert reader.readinto(memoryview(buf)) == 0
    with st.get_object(c, "ri", (0, 10)) as reader:
        if isinstance(st, SwiftStore):  # the socket is read directly (a urllib3 upgrade could end that silently)
            assert reader._direct() is not None  # type: ignore[attr-defined]
    with st.get_object(c, "ri") as reader:
        head = reader.read(4096)  # something buffered above the socket: readinto must not skip it
        got = 0
        while n := reader.readinto(memoryview(buf)[got:got + 100_000]):
            got += n
        assert head + bytes(buf[:got]) == data


def test_large_object_above_segment_size(store: tuple[ObjectStore, str], tmp_path: Path) -> None:
    st, c = store
    data = os.urandom(LARGE)
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    with path.open("rb") as fh:
        info = st.put_object(c, "big/object", fh)
    assert info.size == LARGE
    head = st.head_object(c, "big/object")
    assert head.size == LARGE
    with st.get_object(c, "big/object") as reader:
        got = hashlib.md5()
        total = 0
        for block in reader:
            got.update(block)
            total += len(block)
    assert (total, got.hexdigest()) == (LARGE, _md5(data))
    edge = 5 * 1024 * 1024 - 10  # across the s3 part boundary and many swift segment boundaries
    assert st.get_bytes(c, "big/object", (edge, 300_000)) == data[edge : edge + 300_000]
    # non-seekable source of unknown length goes through the same path
    st.put_object(c, "big/pipe", io.BufferedReader(io.BytesIO(data)))  # type: ignore[arg-type]
    assert st.head_object(c, "big/pipe").size == LARGE
    st.put_object(c, "big/object", b"small now")  # overwrite drops the old segments
    st.delete_object(c, "big/pipe")
    assert st.get_bytes(c, "big/object") == b"small now"
    if isinstance(st, SwiftStore):
        assert list(st.list_objects(c + "_segments")) == []


def test_put_stream_of_unknown_length(store: tuple[ObjectStore, str]) -> None:
    """put_stream (packs uploaded while they fill): one object from blocks, MD5 checked; a store
    that cannot stream says so (stream_limit 0, Unsupported); past the limit is refused."""
    st, c = store
    size = min(st.stream_limit(), 1_500_000) // 2 or 100_000  # within the fixture's small segment size
    blocks = [os.urandom(size // 3), b"", os.urandom(size - size // 3 - 4), b"tail"]
    joined = b"".join(blocks)
    if isinstance(st, S3Store):
        assert st.stream_limit() == 0
        with pytest.raises(StorageError, match="unknown length"):
            st.put_stream(c, "streamed", iter(blocks))
        return
    limit = st.stream_limit()
    assert limit >= len(joined)
    info = st.put_stream(c, "streamed", iter(blocks))
    assert (info.size, info.etag) == (len(joined), _md5(joined))
    unchecked = st.put_stream(c, "unchecked", iter(blocks), checksum=False)  # no client MD5: the store's ETag as it says
    assert (unchecked.size, unchecked.etag) == (len(joined), _md5(joined)) and st.get_bytes(c, "unchecked") == joined
    assert st.get_bytes(c, "streamed") == joined and st.head_object(c, "streamed").etag == _md5(joined)
    if isinstance(st, SwiftStore):
        with pytest.raises(InvalidInput, match="exceeds segment_size"):
            st.put_stream(c, "too-big", iter([bytes(limit), b"x"]))
        with pytest.raises(NotFound):  # the cut-off PUT left no object
            st.head_object(c, "too-big")


def test_listing_pagination_past_the_page_limit(store: tuple[ObjectStore, str]) -> None:
    st, c = store
    names = [f"obj-{i:03d}" for i in range(23)] + [f"d{i:02d}/x" for i in range(10)] + [f"d{i:02d}/y" for i in range(10)]
    for name in names:
        st.put_object(c, name, b"1")
    assert _names(st.list_objects(c)) == sorted(names)
    assert _names(st.list_objects(c, limit=9)) == sorted(names)[:9]
    assert _names(st.list_objects(c, marker="obj-010")) == [n for n in sorted(names) if n > "obj-010"]
    assert _names(st.list_objects(c, prefix="obj-01")) == [f"obj-{i:03d}" for i in range(10, 20)]
    assert _names(st.list_objects(c, delimiter="/")) == [f"d{i:02d}/" for i in range(10)] + [f"obj-{i:03d}" for i in range(23)]
    # paging by hand with the last entry as the marker, like a client would
    seen: list[str] = []
    marker = None
    while True:
        page = _names(st.list_objects(c, delimiter="/", marker=marker, limit=4))
        if not page:
            break
        seen += page
        marker = page[-1]
    assert seen == [f"d{i:02d}/" for i in range(10)] + [f"obj-{i:03d}" for i in range(23)]
    assert st.stat_container(c).object_count == len(names)


def test_concurrent_puts_8_threads_x_50(store: tuple[ObjectStore, str]) -> None:
    st, c = store
    errors: list[BaseException] = []
    expected: dict[str, str] = {}
    lock = threading.Lock()

    def worker(t: int) -> None:
        mine = st.clone()
        try:
            for i in range(50):
                data = os.urandom(1000 + (t * 50 + i) % 4000)
                name = f"t{t}/o{i:02d}"
                info = mine.put_object(c, name, data)
                assert info.etag == _md5(data)
                with lock:
                    expected[name] = _md5(data)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    listed = {e.name: e for e in st.list_objects(c) if isinstance(e, ObjectInfo)}
    assert set(listed) == set(expected) and len(listed) == 400
    def check(store: ObjectStore, name: str) -> None:
        assert listed[name].etag == expected[name]
        assert _md5(store.get_bytes(c, name)) == expected[name]

    _parallel(st, sorted(expected), check)


@pytest.mark.swift
@pytest.mark.parametrize("kind", ["swift", "s3"])
def test_proxy_killed_and_restarted_during_uploads(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, swift_server: Any
) -> None:
    st = _make(kind, tmp_path, request)
    container = f"kill-{uuid.uuid4().hex[:12]}"
    st.create_container(container)
    outcomes: dict[str, Any] = {}
    stop = threading.Event()

    def worker(t: int) -> None:
        mine = st.clone()
        i = 0
        while not stop.is_set() and i < 400:
            name = f"w{t}/{i:04d}"
            data = os.urandom(20_000 + i)
            try:
                mine.put_object(container, name, data)
                outcomes[name] = _md5(data)
            except StorageError as exc:
                outcomes[name] = exc
            i += 1
        mine.close()

    def successes() -> int:
        return sum(1 for d in list(outcomes.values()) if isinstance(d, str))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60
    while successes() < 8 and time.monotonic() < deadline:  # uploads are flowing
        time.sleep(0.05)
    swift_server.stop_proxy()
    time.sleep(1.5)
    swift_server.start_proxy()
    resumed_from = successes()
    while successes() < resumed_from + 12 and time.monotonic() < deadline + 60:  # and flow again
        time.sleep(0.05)
    stop.set()
    for th in threads:
        th.join(timeout=120)
    try:
        ok = {n: d for n, d in outcomes.items() if isinstance(d, str)}
        failed = {n: e for n, e in outcomes.items() if not isinstance(e, str)}
        assert len(ok) >= resumed_from + 12, "uploads did not resume after the proxy came back"
        for exc in failed.values():  # a failure is loud and clear, never a silent loss
            assert "unreachable" in exc.message or "HTTP 5" in exc.message, exc.message
        listed = {e.name: e.etag for e in st.list_objects(container) if isinstance(e, ObjectInfo)}
        missing = sorted(set(ok) - set(listed))
        assert missing == [], f"puts reported success but objects are missing: {missing[:5]}"
        for name, digest in ok.items():
            assert listed[name] == digest
    finally:
        _empty_and_delete(st, container)
        st.close()
