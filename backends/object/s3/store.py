"""S3 object store (scheme ``s3``) on the minio SDK.

Options: ``endpoint`` (``http://host:port`` or ``host:port``), ``access_key``,
``secret_key``, ``region`` (``us-east-1``), ``secure`` (from the endpoint scheme, else
false), ``part_size`` (``64M``, at least 5 MiB), ``multipart_threshold`` (= part_size),
``listing_page_size`` (1000), ``retries`` (5), ``timeout`` (60 s), ``connect_timeout`` (10 s,
at most ``timeout``), ``read_timeout`` (= ``timeout``). A request without an answer fails after
at most (retries + 1) x (connect_timeout + read_timeout) plus backoffs (``request_bound()``).

Objects above ``multipart_threshold`` are uploaded in parts (each part's ETag checked
against its MD5; the final ETag against the MD5 of the part MD5s); smaller ones in one PUT
with ``Content-MD5`` and an ETag check. Buckets are containers (S3 naming rules apply).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, ClassVar

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import Part

from backends.object.base import ContainerInfo, ObjectInfo, ObjectReader, ObjectStore, PrefixEntry
from backends.object.checked import CheckedReader
from backends.object.io import as_seekable
from backends.object.listing import entry_name, fold_delimiter, limited, validate_limit
from backends.object.names import validate_container, validate_object_name, validate_range
from backends.object.s3.util import (
    check_bucket_name,
    meta_from_headers,
    parse_endpoint,
    s3_errors,
)
from storage.errors import BackendError, DataCorruption, InvalidInput, Unsupported
from storage.units import parse_size

MIN_PART = 5 * 1024 * 1024
BACKOFF_FACTOR = 0.2


def _option_number(options: Mapping[str, Any], key: str, default: float, minimum: float, maximum: float) -> float:
    value = options.get(key, default)
    try:
        number = float(value) if not isinstance(value, bool) else minimum - 1
    except (TypeError, ValueError, OverflowError):
        number = minimum - 1
    if not minimum <= number <= maximum:  # also NaN
        raise InvalidInput(
            f"s3 option {key} = {str(value)[:40]!r} is not accepted; accepted: a number from {minimum} to {maximum}",
            field=key,
        )
    return number
IO_CHUNK = 1024 * 1024
ACCEPTED_OPTIONS = (
    "endpoint", "access_key", "secret_key", "region", "secure", "part_size", "multipart_threshold",
    "listing_page_size", "retries", "timeout", "connect_timeout", "read_timeout",
)


class _S3Reader(CheckedReader):
    def __init__(self, resp: Any, info: ObjectInfo, expected: int, verify_md5: bool) -> None:
        super().__init__(info, expected, verify_md5)
        self._resp = resp

    def _read_raw(self, n: int) -> bytes:
        with s3_errors("read", f"object {self.info.name if self.info else ''!r}"):
            return self._resp.read(n)

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp.release_conn()
            self._resp = None


class S3Store(ObjectStore):
    scheme: ClassVar[str] = "s3"

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - set(ACCEPTED_OPTIONS))
        if unknown:
            raise InvalidInput(
                f"unknown s3 store option(s) {unknown}; accepted: {', '.join(ACCEPTED_OPTIONS)}", field="options"
            )
        o = self.options
        if not o.get("endpoint") or not o.get("access_key") or o.get("secret_key") is None:
            raise InvalidInput("s3 store needs endpoint, access_key and secret_key", field="endpoint")
        host, secure = parse_endpoint(str(o["endpoint"]), o.get("secure"))
        self.endpoint = f"{'https' if secure else 'http'}://{host}"
        self.part_size = parse_size(o.get("part_size", "64M"), field="part_size")
        if self.part_size < MIN_PART:
            raise InvalidInput(f"s3 part_size {o['part_size']!r} is too small; accepted: at least 5M", field="part_size")
        self.threshold = parse_size(o.get("multipart_threshold", self.part_size), field="multipart_threshold")
        self.page_size = int(o.get("listing_page_size", 1000))
        self.retries = int(_option_number(o, "retries", 5, 0, 100))
        timeout = _option_number(o, "timeout", 60, 0.001, 86400)
        self.read_timeout = _option_number(o, "read_timeout", timeout, 0.001, 86400)
        self.connect_timeout = _option_number(o, "connect_timeout", min(10.0, timeout), 0.001, 86400)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout),
            maxsize=4,
            retries=urllib3.Retry(
                total=self.retries, backoff_factor=BACKOFF_FACTOR, status_forcelist=(500, 502, 503, 504),
                allowed_methods=None, raise_on_status=False,
            ),
        )
        self.client = Minio(
            host, access_key=str(o["access_key"]), secret_key=str(o["secret_key"]), secure=secure,
            region=str(o.get("region", "us-east-1")), http_client=http,
        )

    def request_bound(self) -> float:
        """Seconds after which one request without an answer has failed, retries and backoffs included."""
        sleeps = sum(min(BACKOFF_FACTOR * 2**i, urllib3.Retry.DEFAULT_BACKOFF_MAX) for i in range(1, self.retries))
        return (self.retries + 1) * (self.connect_timeout + self.read_timeout) + sleeps

    def clone(self) -> "S3Store":
        return S3Store(self.options)

    def close(self) -> None:
        self.client._http.clear()

    def _ctx(self, op: str, what: str) -> Any:
        return s3_errors(op, what, endpoint=self.endpoint, access_key=str(self.options.get("access_key")))

    @staticmethod
    def _bucket(container: str) -> str:
        return check_bucket_name(validate_container(container))

    # -- containers -------------------------------------------------------
    def create_container(self, container: str, metadata: Mapping[str, str] | None = None) -> None:
        bucket = self._bucket(container)
        if metadata:
            raise Unsupported("s3 buckets have no metadata; store it in an object instead", field="metadata")
        with self._ctx("create", f"bucket {container!r}"):
            if not self.client.bucket_exists(bucket):
                try:
                    self.client.make_bucket(bucket)
                except Exception as exc:  # noqa: BLE001 - a concurrent creator won the race
                    if getattr(exc, "code", "") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

    def delete_container(self, container: str) -> None:
        bucket = self._bucket(container)
        with self._ctx("delete", f"bucket {container!r}"):
            self.client.remove_bucket(bucket)

    def stat_container(self, container: str) -> ContainerInfo:
        bucket = self._bucket(container)
        count = used = 0
        with self._ctx("stat", f"bucket {container!r}"):
            for obj in self.client._list_objects(bucket, max_keys=self.page_size, prefix="", delimiter=None):
                count += 1
                used += int(obj.size or 0)
        return ContainerInfo(name=container, object_count=count, bytes_used=used)

    def list_containers(self, prefix: str | None = None) -> Iterator[ContainerInfo]:
        with self._ctx("list", "buckets"):
            buckets = self.client.list_buckets()
        for b in sorted(buckets, key=lambda b: b.name):
            if not prefix or b.name.startswith(prefix):
                yield self.stat_container(b.name)

    # -- objects ----------------------------------------------------------
    def put_object(
        self,
        container: str,
        name: str,
        data: bytes | BinaryIO,
        length: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        bucket = self._bucket(container)
        validate_object_name(name)
        headers = {"Content-Type": content_type or "application/octet-stream"}
        meta = {}
        for key, value in (metadata or {}).items():
            if not isinstance(key, str) or not key or any(c in key for c in ":\r\n\x00 ") or not isinstance(value, str):
                raise InvalidInput(f"metadata key {key!r} is not accepted; accepted: text keys without ':' or spaces", field="metadata")
            meta[key.lower()] = value
            headers[f"x-amz-meta-{key.lower()}"] = value
        src, start, size, must_close = as_seekable(data, length)
        try:
            src.seek(start)
            if size > self.threshold:
                etag = self._put_multipart(bucket, name, src, size, headers)
            else:
                etag = self._put_single(bucket, name, src.read(size) if size else b"", headers)
        finally:
            if must_close:
                src.close()
        return ObjectInfo(name=name, size=size, etag=etag, content_type=headers["Content-Type"], metadata=meta)

    def _put_single(self, bucket: str, name: str, body: bytes, headers: dict[str, str]) -> str:
        digest = hashlib.md5(body, usedforsecurity=False)
        sent = digest.hexdigest()
        with self._ctx("upload", f"object {name!r} to bucket {bucket!r}"):
            result = self.client._put_object(
                bucket, name, body, headers={**headers, "Content-MD5": base64.b64encode(digest.digest()).decode()}
            )
        if not result.etag or result.etag.strip('"') != sent:
            raise DataCorruption(f"object {name!r}: server ETag {result.etag!r} does not match the MD5 {sent} of the data sent")
        return sent

    def _put_multipart(self, bucket: str, name: str, src: BinaryIO, size: int, headers: dict[str, str]) -> str:
        with self._ctx("upload", f"object {name!r} to bucket {bucket!r}"):
            upload_id = self.client._create_multipart_upload(bucket, name, dict(headers))
        parts: list[Part] = []
        digests: list[bytes] = []
        try:
            done = 0
            while done < size:
                body = src.read(min(self.part_size, size - done))
                if not body:
                    raise InvalidInput(f"stream ended after {done} of the {size} bytes announced", field="length")
                digest = hashlib.md5(body, usedforsecurity=False)
                number = len(parts) + 1
                with self._ctx("upload", f"part {number} of object {name!r}"):
                    etag = self.client._upload_part(
                        bucket, name, body, {"Content-MD5": base64.b64encode(digest.digest()).decode()}, upload_id, number
                    )
                if etag.strip('"') != digest.hexdigest():
                    raise DataCorruption(f"object {name!r}: part {number} ETag {etag!r} does not match its MD5")
                parts.append(Part(number, etag.strip('"')))
                digests.append(digest.digest())
                done += len(body)
            with self._ctx("complete", f"multipart upload of object {name!r}"):
                result = self.client._complete_multipart_upload(bucket, name, upload_id, parts)
        except BaseException:
            try:
                self.client._abort_multipart_upload(bucket, name, upload_id)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
            raise
        expected = f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(parts)}"
        got = (result.etag or "").strip('"')
        if got != expected:
            raise DataCorruption(f"object {name!r}: multipart ETag {got!r} does not match the expected {expected}")
        return expected

    def get_object(self, container: str, name: str, byte_range: tuple[int, int] | None = None) -> ObjectReader:
        bucket = self._bucket(container)
        validate_object_name(name)
        rng = validate_range(byte_range)
        if rng is not None and rng[1] == 0:
            return _S3Reader(None, self.head_object(container, name), 0, False)
        with self._ctx("download", f"object {name!r} from bucket {container!r}"):
            if rng is None:
                resp = self.client.get_object(bucket, name)
            else:
                resp = self.client.get_object(bucket, name, offset=rng[0], length=rng[1])
        headers = resp.headers
        expected = int(headers.get("content-length", 0))
        info = self._info(name, headers)
        if rng is not None:
            total = headers.get("content-range", "").rsplit("/", 1)[-1]
            if not total.isdigit():
                resp.close()
                resp.release_conn()
                raise BackendError(f"object {name!r}: the server ignored the byte range {rng}")
            info = ObjectInfo(info.name, int(total), info.etag, info.last_modified, info.content_type, info.metadata)
        verify = rng is None and bool(info.etag) and "-" not in (info.etag or "")
        return _S3Reader(resp, info, expected, verify)

    @staticmethod
    def _info(name: str, headers: Mapping[str, str]) -> ObjectInfo:
        from backends.object.swift.util import http_date_to_iso

        return ObjectInfo(
            name=name,
            size=int(headers.get("content-length", 0)),
            etag=(headers.get("etag") or "").strip('"') or None,
            last_modified=http_date_to_iso(headers.get("last-modified")),
            content_type=headers.get("content-type"),
            metadata=meta_from_headers(headers),
        )

    def head_object(self, container: str, name: str) -> ObjectInfo:
        bucket = self._bucket(container)
        validate_object_name(name)
        with self._ctx("stat", f"object {name!r} in bucket {container!r}"):
            stat = self.client.stat_object(bucket, name)
        info = self._info(name, stat.metadata)
        return ObjectInfo(name, int(stat.size or 0), info.etag, info.last_modified, info.content_type, info.metadata)

    def delete_object(self, container: str, name: str) -> None:
        bucket = self._bucket(container)
        self.head_object(container, name)  # S3 deletes of missing keys succeed silently
        with self._ctx("delete", f"object {name!r} in bucket {container!r}"):
            self.client.remove_object(bucket, name)

    def list_objects(
        self,
        container: str,
        prefix: str | None = None,
        delimiter: str | None = None,
        marker: str | None = None,
        limit: int | None = None,
    ) -> Iterator[ObjectInfo | PrefixEntry]:
        bucket = self._bucket(container)
        limit = validate_limit(limit)
        server_delim = delimiter if delimiter == "/" else None  # others are folded here
        return limited(fold_delimiter(self._pages(bucket, prefix, server_delim, marker), prefix or "", delimiter, marker), limit)

    def _pages(self, bucket: str, prefix: str | None, delimiter: str | None, marker: str | None) -> Iterator[ObjectInfo | PrefixEntry]:
        """Entries in name order. S3 returns each page's keys, then its common prefixes; a page
        holds at most ``page_size`` of both together, so sorting each run of that many restores
        the order across them."""
        with self._ctx("list", f"bucket {bucket!r}"):
            objects = self.client._list_objects(
                bucket, max_keys=self.page_size, prefix=prefix or "", delimiter=delimiter or "", start_after=marker,
            )
            page: list[ObjectInfo | PrefixEntry] = []
            for obj in objects:
                page.append(self._entry(obj))
                if len(page) == self.page_size:
                    yield from sorted(page, key=entry_name)
                    page = []
            yield from sorted(page, key=entry_name)

    @staticmethod
    def _entry(obj: Any) -> ObjectInfo | PrefixEntry:
        if obj.is_dir:
            return PrefixEntry(obj.object_name)
        return ObjectInfo(
            name=obj.object_name, size=int(obj.size or 0), etag=(obj.etag or "").strip('"') or None,
            last_modified=obj.last_modified.isoformat(timespec="microseconds") if obj.last_modified else None,
        )

    def copy_object(self, container: str, name: str, dest_container: str, dest_name: str) -> None:
        src_bucket, dst_bucket = self._bucket(container), self._bucket(dest_container)
        validate_object_name(name)
        validate_object_name(dest_name)
        with self._ctx("copy", f"object {name!r} of bucket {container!r}"):
            self.client.copy_object(dst_bucket, dest_name, CopySource(src_bucket, name))

