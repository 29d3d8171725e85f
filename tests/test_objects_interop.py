"""Interop with the reference clients on the real Swift: the `swift` CLI and the minio client."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from backends.object.s3.store import S3Store
from backends.object.swift.store import SwiftStore

pytestmark = pytest.mark.swift


def _swift(server: Any, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server.cli_env()}
    return subprocess.run([str(server.swift_cli), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture
def container(swift_options: dict[str, Any]) -> Any:
    name = f"interop-{uuid.uuid4().hex[:10]}"
    yield name
    store = SwiftStore(swift_options)
    for c in (name, name + "_segments"):
        try:
            for e in list(store.list_objects(c)):
                store.delete_object(c, e.name)  # type: ignore[union-attr]
            store.delete_container(c)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def test_swift_cli_downloads_what_we_upload_including_segmented(
    swift_server: Any, swift_options: dict[str, Any], container: str, tmp_path: Path
) -> None:
    store = SwiftStore(swift_options)
    store.create_container(container)
    small = os.urandom(1000)
    large = os.urandom(3 * swift_options["segment_size"] + 17)  # a Static Large Object
    store.put_object(container, "dir/small.bin", small, metadata={"who": "us"})
    store.put_object(container, "dir/large.bin", io.BytesIO(large))
    out = tmp_path / "out"
    out.mkdir()
    _swift(swift_server, "download", container, "--output-dir", str(out))
    assert (out / "dir" / "small.bin").read_bytes() == small
    assert (out / "dir" / "large.bin").read_bytes() == large
    stat = _swift(swift_server, "stat", container, "dir/large.bin").stdout
    assert "Manifest:" in stat or "X-Static-Large-Object" in stat
    assert "Meta Who: us" in _swift(swift_server, "stat", container, "dir/small.bin").stdout
    listing = _swift(swift_server, "list", container, "--lh").stdout
    assert "dir/large.bin" in listing and "dir/small.bin" in listing


def test_we_download_what_the_swift_cli_uploads(
    swift_server: Any, swift_options: dict[str, Any], container: str, tmp_path: Path
) -> None:
    data = os.urandom(700_000)
    src = tmp_path / "src"
    src.mkdir()
    (src / "file.bin").write_bytes(data)
    _swift(swift_server, "upload", container, "file.bin", "--segment-size", "200000", "--use-slo", cwd=src)
    (src / "plain.txt").write_bytes(b"plain text\n")
    _swift(swift_server, "upload", container, "plain.txt", cwd=src)
    store = SwiftStore(swift_options)
    assert store.get_bytes(container, "file.bin") == data
    assert store.head_object(container, "file.bin").size == len(data)
    assert store.get_bytes(container, "plain.txt") == b"plain text\n"
    assert store.get_bytes(container, "file.bin", (199_990, 20)) == data[199_990:200_010]
    # our delete removes the swift CLI's segments too
    store.delete_object(container, "file.bin")
    assert [e for e in store.list_objects(container + "_segments")] == []


def test_minio_reads_what_we_write_through_s3_and_swift_sees_it(
    swift_server: Any, s3_options: dict[str, Any], swift_options: dict[str, Any]
) -> None:
    bucket = f"interop-{uuid.uuid4().hex[:10]}"
    store = S3Store(s3_options)
    store.create_container(bucket)
    small = os.urandom(10_000)
    large = os.urandom(6 * 1024 * 1024 + 5)  # multipart (part size 5 MiB)
    store.put_object(bucket, "a/small", small, metadata={"k": "v"})
    store.put_object(bucket, "a/large", io.BytesIO(large))
    host = swift_server.s3_endpoint.split("://", 1)[1]
    client = Minio(host, access_key=swift_server.access_key, secret_key=swift_server.secret_key, secure=False, region="us-east-1")
    try:
        for name, data in (("a/small", small), ("a/large", large)):
            resp = client.get_object(bucket, name)
            try:
                assert hashlib.md5(resp.read()).hexdigest() == hashlib.md5(data).hexdigest()
            finally:
                resp.close()
                resp.release_conn()
        assert client.stat_object(bucket, "a/small").metadata.get("x-amz-meta-k") == "v"
        assert sorted(o.object_name for o in client.list_objects(bucket, prefix="a/")) == ["a/large", "a/small"]
        # the same bytes through the Swift API
        assert SwiftStore(swift_options).get_bytes(bucket, "a/large") == large
        # and what minio writes, we read
        client.put_object(bucket, "from-minio", io.BytesIO(b"hello from minio"), 16)
        assert store.get_bytes(bucket, "from-minio") == b"hello from minio"
    finally:
        for e in list(store.list_objects(bucket)):
            store.delete_object(bucket, e.name)  # type: ignore[union-attr]
        store.delete_container(bucket)
