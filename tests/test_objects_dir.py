"""The directory store's own guarantees: safe names, atomic writes, on-disk layout, URLs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import storage
from backends.object.dir.store import DirectoryStore
from backends.object.base import ObjectInfo, PrefixEntry
from backends.object.listing import fold_delimiter
from backends.object.pathcodec import decode_component, encode_component, object_relpath
from storage.errors import Conflict, InvalidInput, NotFound


@pytest.fixture
def ds(tmp_path: Path) -> DirectoryStore:
    store = DirectoryStore({"root": str(tmp_path / "root")})
    store.create_container("c")
    return store


@given(hst.text(hst.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), max_size=120))
@settings(max_examples=300, deadline=None)
def test_component_codec_round_trips_and_is_a_safe_file_name(component: str) -> None:
    try:
        enc = encode_component(component)
    except InvalidInput:
        worst = sum(1 if c.isascii() and (c.isalnum() or c in "_.-") else 3 if c.isascii() else len(c.encode()) for c in component)
        assert worst > 254
        return
    assert len(enc.encode()) <= 254
    assert decode_component(enc) == component
    assert "/" not in enc and enc not in (".", "..", "") and not enc.startswith(".") and not enc.endswith("+")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../x", "./.", "..", "a//b", "a/"])
def test_hostile_names_stay_inside_the_container(ds: DirectoryStore, tmp_path: Path, name: str) -> None:
    ds.put_object("c", name, b"payload")
    assert ds.get_bytes("c", name) == b"payload"
    cdir = (tmp_path / "root" / "c").resolve()
    found = [Path(dp) / f for dp, _dn, fns in os.walk(tmp_path) for f in fns]
    assert found and all(p.resolve().is_relative_to(cdir) for p in found)
    assert [o.name for o in ds.list_objects("c")] == [name]


def test_object_and_pseudo_directory_of_the_same_name_coexist(ds: DirectoryStore) -> None:
    ds.put_object("c", "a", b"1")
    ds.put_object("c", "a/b", b"2")
    assert ds.get_bytes("c", "a") == b"1" and ds.get_bytes("c", "a/b") == b"2"
    entries = list(ds.list_objects("c", delimiter="/"))
    assert [type(e).__name__ for e in entries] == ["ObjectInfo", "PrefixEntry"]
    ds.delete_object("c", "a/b")
    assert [o.name for o in ds.list_objects("c")] == ["a"]
    assert not (Path(ds.root) / "c" / "a+").exists()  # empty directory pruned


def test_failed_write_leaves_no_object_and_no_temp_file(ds: DirectoryStore, tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk on fire")
            return b"x" * 1000

    ds.put_object("c", "obj", b"old")
    with pytest.raises(OSError, match="disk on fire"):
        ds.put_object("c", "obj", Broken())
    assert ds.get_bytes("c", "obj") == b"old"
    with pytest.raises(InvalidInput, match="stream ended after 3 of the 10 bytes"):
        ds.put_object("c", "short", io.BytesIO(b"abc"), length=10)
    with pytest.raises(NotFound):
        ds.head_object("c", "short")
    leftovers = [f for _dp, _dn, fns in os.walk(tmp_path) for f in fns if f.startswith(".tmp")]
    assert leftovers == []


def test_metadata_content_type_and_etag_survive(ds: DirectoryStore) -> None:
    info = ds.put_object("c", "m", b"hello", content_type="text/plain", metadata={"Color": "blue"})
    assert info.etag == "5d41402abc4b2a76b9719d911017c592"
    head = ds.head_object("c", "m")
    assert (head.size, head.etag, head.content_type, dict(head.metadata)) == (5, info.etag, "text/plain", {"color": "blue"})
    ds.copy_object("c", "m", "c", "m2")
    assert ds.head_object("c", "m2").metadata == {"color": "blue"}


def test_container_rules(ds: DirectoryStore) -> None:
    ds.put_object("c", "x", b"1")
    with pytest.raises(Conflict, match="not empty"):
        ds.delete_container("c")
    ds.delete_object("c", "x")
    ds.delete_container("c")
    with pytest.raises(NotFound, match="container 'c' does not exist"):
        ds.put_object("c", "x", b"1")
    for bad in ["", "a/b", "..", "x" * 257, "a\x00b"]:
        with pytest.raises(InvalidInput, match="container name"):
            ds.create_container(bad)


def test_bad_options_are_named() -> None:
    with pytest.raises(InvalidInput, match="absolute path"):
        DirectoryStore({"root": "relative"})
    with pytest.raises(InvalidInput, match="accepted: root, fsync"):
        DirectoryStore({"root": "/x", "colour": "red"})


def test_fold_delimiter_matches_swift_rules() -> None:
    names = ["a", "a/b", "a/c/d", "b-x", "b/y", "c"]
    infos = [ObjectInfo(n, 0) for n in names]
    out = list(fold_delimiter(infos, "", "/", None))
    assert [getattr(e, "name", None) or e.prefix for e in out] == ["a", "a/", "b-x", "b/", "c"]  # type: ignore[union-attr]
    out = list(fold_delimiter(infos, "", "/", "a/"))  # marker == subdir: not repeated
    assert [getattr(e, "name", None) or e.prefix for e in out] == ["b-x", "b/", "c"]  # type: ignore[union-attr]
    out = list(fold_delimiter(infos, "a/", "/", None))
    assert out == [ObjectInfo("a/b", 0), PrefixEntry("a/c/")]


def test_object_relpath_layout() -> None:
    assert object_relpath("chunks/ab/abcdef") == (["chunks+", "ab+"], "abcdef")
    assert object_relpath("ünï/a b") == (["ünï+"], "a%20b")
    assert object_relpath("../x") == (["%2E.+"], "x")


def test_long_components_fit_or_fail_clearly(ds: DirectoryStore) -> None:
    ds.put_object("c", "名" * 84 + "/x", b"1")  # 252 bytes of UTF-8 in one component
    assert [o.name for o in ds.list_objects("c")] == ["名" * 84 + "/x"]
    with pytest.raises(InvalidInput, match="at most 254 bytes"):
        ds.put_object("c", "名" * 85, b"1")


def test_open_url_file_rules(st: storage.Storage, tmp_path: Path) -> None:
    loc = st.objects.open_url(st.settings.backup.repository or "")
    assert (loc.container, loc.prefix, loc.store_name) == ("backups", "", "local")
    deep = st.objects.open_url(f"file://{st.settings.data_dir}/objects/backups/repo1/sub")
    assert (deep.container, deep.prefix, deep.key("x")) == ("backups", "repo1/sub", "repo1/sub/x")
    other = st.objects.open_url(f"file://{tmp_path}/elsewhere/cont")
    assert (other.container, other.prefix) == ("cont", "")
    other.ensure_container().store.put_object(other.container, other.key("o"), b"1")
    assert (tmp_path / "elsewhere" / "cont" / "o").read_bytes() == b"1"
    clone = other.clone_store()
    assert clone is not other.store and clone.get_bytes("cont", "o") == b"1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x/y", "scheme 'ftp' is not accepted; accepted: file:///"),
        ("file://relative/x", "absolute path"),
        ("swift://", "names no container"),
        ("swift://nope@c", "'nope' is not configured"),
        ("swift://local@c", "of type 'file', not 'swift'"),
        ("s3://b", "no s3 object store is configured"),
    ],
)
def test_open_url_errors_name_what_is_accepted(st: storage.Storage, url: str, message: str) -> None:
    with pytest.raises((InvalidInput, NotFound), match=message):
        st.objects.open_url(url)


def test_concurrent_puts_and_deletes_in_shared_directories(ds: DirectoryStore) -> None:
    """Deletes prune empty directories while other threads write into them: no put may fail or vanish."""
    import threading

    errors: list[BaseException] = []
    kept: list[str] = []

    def worker(t: int) -> None:
        mine = ds.clone()
        try:
            for i in range(150):
                name = f"shared/{i % 3}/t{t}-{i}"
                mine.put_object("c", name, name.encode())
                if i < 147:  # directories keep emptying (and being pruned) while others write
                    mine.delete_object("c", name)
                else:
                    kept.append(name)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert sorted(o.name for o in ds.list_objects("c")) == sorted(kept)
    assert all(ds.get_bytes("c", n) == n.encode() for n in kept)
