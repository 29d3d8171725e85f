"""OpenStack Swift object store (scheme ``swift``) on python-swiftclient.

Authentication, one of:
- tempauth / v1: ``auth_url``, ``user``, ``key``;
- Keystone v3 through a keystoneauth1 session: ``auth_url``, ``username``, ``password``,
  ``project_name`` (or ``project_id``), ``user_domain_name``, ``project_domain_name``
  (both default ``Default``), optional ``region_name``;
- pre-authenticated: ``preauth_token`` + ``storage_url``.

Other options: ``retries`` (5), ``starting_backoff`` (1 s), ``max_backoff`` (64 s),
``connect_timeout`` (10 s, at most ``timeout``), ``read_timeout`` (= ``timeout``, 60 s: the
longest wait for any byte of an answer), ``segment_size`` (``1G``: larger objects become Static
Large Objects with segments in ``<container>_segments``), ``listing_page_size`` (10000),
``insecure``. A request that gets no answer fails after at most (retries + 1) x (connect_timeout
+ read_timeout) plus the backoffs (``request_bound()``), naming the request and the timeout.

One ``Connection`` per instance; ``clone()`` makes a new one for another thread (a shared
connection silently loses writes on retry). Every body sent is a rewindable window so a
retry re-sends the same bytes; every PUT's ETag is checked against the MD5 computed here.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, ClassVar

from swiftclient.client import Connection
from swiftclient.exceptions import ClientException
from swiftclient.utils import LengthWrapper

from backends.object.base import ContainerInfo, ObjectInfo, ObjectReader, ObjectStore, PrefixEntry
from backends.object.io import HashingWindow, as_seekable
from backends.object.listing import limited, validate_limit
from backends.object.names import validate_container, validate_object_name, validate_range
from backends.object.swift.reader import IO_CHUNK, SwiftReader
from backends.object.swift.stream import put_stream
from backends.object.swift.slo import (
    manifest_body,
    manifest_segment_paths,
    plan_segments,
    segments_container,
    slo_etag,
)
from backends.object.swift.util import (
    EMPTY_MD5,
    container_meta,
    meta_headers,
    object_info_from_headers,
    request_bound,
    swift_errors,
)
from storage.errors import BackendError, DataCorruption, InvalidInput
from storage.units import parse_size

AUTH_OPTIONS = (
    "auth_url", "user", "key", "username", "password", "project_name", "project_id", "user_domain_name",
    "project_domain_name", "region_name", "auth_version", "preauth_token", "storage_url",
)
TUNING_OPTIONS = (
    "retries", "starting_backoff", "max_backoff", "timeout", "connect_timeout", "read_timeout", "segment_size",
    "listing_page_size", "insecure",
)
ACCEPTED_OPTIONS = AUTH_OPTIONS + TUNING_OPTIONS


class _BulkBody(LengthWrapper):
    """A request body read in IO_CHUNK blocks whatever size the HTTP stack asks for.

    urllib3 reads a body 16 KiB at a time, one send() and one GIL hand-off each: uploading a
    16 MiB pack took 1,024 sends. swiftclient passes a LengthWrapper through untouched and
    rewinds it (``reset``) before a retry, so the body stays re-sendable.
    """

    def read(self, size: int = -1) -> Any:
        return super().read(size if size is None or size < 0 else max(size, IO_CHUNK))


def _number(options: Mapping[str, Any], key: str, default: float, *, minimum: float = 0, maximum: float = 86400) -> float:
    value = options.get(key, default)
    try:
        number = float(value) if not isinstance(value, bool) else minimum - 1
    except (TypeError, ValueError, OverflowError):
        number = minimum - 1
    if not minimum <= number <= maximum:  # also NaN
        raise InvalidInput(
            f"swift option {key} = {str(value)[:40]!r} is not accepted; accepted: a number from {minimum} to {maximum}",
            field=key,
        )
    return number


class SwiftStore(ObjectStore):
    scheme: ClassVar[str] = "swift"

    def __init__(self, options: Mapping[str, Any], _preauth: tuple[str, str] | None = None,
                 _segments: tuple[set[str], set[str]] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - set(ACCEPTED_OPTIONS))
        if unknown:
            raise InvalidInput(
                f"unknown swift store option(s) {unknown}; accepted: {', '.join(ACCEPTED_OPTIONS)}", field="options"
            )
        self.retries = int(_number(self.options, "retries", 5, maximum=100))
        timeout = _number(self.options, "timeout", 60, minimum=0.001)
        self.read_timeout = _number(self.options, "read_timeout", timeout, minimum=0.001)
        self.connect_timeout = _number(self.options, "connect_timeout", min(10.0, timeout), minimum=0.001)
        self.starting_backoff = _number(self.options, "starting_backoff", 1)
        self.max_backoff = _number(self.options, "max_backoff", 64)
        self.segment_size = parse_size(self.options.get("segment_size", "1G"), field="segment_size")
        self.page_size = int(_number(self.options, "listing_page_size", 10000, minimum=1, maximum=10000))
        self.endpoint = str(self.options.get("auth_url") or self.options.get("storage_url") or "")
        # segments containers known to exist / checked; shared with this store's clones, so the
        # stores of one backup (lock, uploader, manifest) ask once, not once each
        self._segment_containers, self._segment_checked = _segments if _segments is not None else (set(), set())
        self.conn = self._connect(_preauth)

    # -- connection -------------------------------------------------------
    def _connect(self, preauth: tuple[str, str] | None) -> Connection:
        o = self.options
        common: dict[str, Any] = {
            "retries": self.retries,
            "starting_backoff": self.starting_backoff,
            "max_backoff": self.max_backoff,
            "timeout": (self.connect_timeout, self.read_timeout),  # requests: (connect, read)
            "insecure": str(o.get("insecure", "false")).lower() in ("1", "true", "yes"),
            "retry_on_ratelimit": True,
        }
        if o.get("preauth_token"):
            if not o.get("storage_url"):
                raise InvalidInput("swift option preauth_token needs storage_url as well", field="storage_url")
            return Connection(preauthurl=o["storage_url"], preauthtoken=o["preauth_token"], **common)
        if not o.get("auth_url"):
            raise InvalidInput(
                "swift store needs auth_url with user/key (tempauth), auth_url with username/password/project_name "
                "(Keystone v3), or preauth_token with storage_url",
                field="auth_url",
            )
        if str(o.get("auth_version", "3" if o.get("username") else "1")).startswith("3"):
            return Connection(session=self._keystone_session(), os_options=self._os_options(), **common)
        if not o.get("user") or o.get("key") is None:
            raise InvalidInput("swift tempauth needs both user and key", field="user")
        url, token = preauth or (None, None)
        return Connection(
            authurl=o["auth_url"], user=o["user"], key=o["key"], auth_version="1",
            preauthurl=url, preauthtoken=token, **common,
        )

    def request_bound(self) -> float:
        """Seconds after which one request without an answer has failed, retries and backoffs included."""
        return request_bound(self.retries, self.connect_timeout, self.read_timeout, self.starting_backoff, self.max_backoff)

    def _keystone_session(self) -> Any:
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        o = self.options
        missing = [k for k in ("username", "password") if not o.get(k)]
        if missing or not (o.get("project_name") or o.get("project_id")):
            raise InvalidInput(
                f"swift Keystone v3 auth needs username, password and project_name or project_id; missing: "
                f"{', '.join(missing + ([] if o.get('project_name') or o.get('project_id') else ['project_name']))}",
                field="username",
            )
        auth = v3.Password(
            auth_url=o["auth_url"], username=o["username"], password=o["password"],
            project_name=o.get("project_name"), project_id=o.get("project_id"),
            user_domain_name=o.get("user_domain_name", "Default"),
            project_domain_name=o.get("project_domain_name", "Default"),
        )
        return ks_session.Session(auth=auth, verify=not str(o.get("insecure", "false")).lower() in ("1", "true", "yes"),
                                  timeout=self.read_timeout)

    def _os_options(self) -> dict[str, str]:
        out = {}
        if self.options.get("region_name"):
            out["region_name"] = self.options["region_name"]
        if self.options.get("storage_url"):
            out["object_storage_url"] = self.options["storage_url"]
        return out

    def clone(self) -> "SwiftStore":
        preauth = None
        if self.conn.url and self.conn.token and not self.options.get("username"):
            preauth = (self.conn.url, self.conn.token)  # reuse the token; re-auth on 401
        return SwiftStore(self.options, _preauth=preauth, _segments=(self._segment_containers, self._segment_checked))

    def close(self) -> None:
        self.conn.close()

    def _ctx(self, op: str, what: str) -> Any:
        return swift_errors(op, what, endpoint=self.endpoint, user=self.options.get("user") or self.options.get("username"))

    # -- containers -------------------------------------------------------
    def create_container(self, container: str, metadata: Mapping[str, str] | None = None) -> None:
        validate_container(container)
        with self._ctx("create", f"container {container!r}"):
            self.conn.put_container(container, headers=meta_headers("X-Container-Meta-", metadata))

    def delete_container(self, container: str) -> None:
        validate_container(container)
        with self._ctx("delete", f"container {container!r}"):
            self.conn.delete_container(container)

    def stat_container(self, container: str) -> ContainerInfo:
        validate_container(container)
        with self._ctx("stat", f"container {container!r}"):
            headers = self.conn.head_container(container)
        return ContainerInfo(
            name=container,
            object_count=int(headers.get("x-container-object-count", 0)),
            bytes_used=int(headers.get("x-container-bytes-used", 0)),
            metadata=container_meta(headers),
        )

    def list_containers(self, prefix: str | None = None) -> Iterator[ContainerInfo]:
        marker = ""
        while True:
            with self._ctx("list", "containers"):
                _headers, page = self.conn.get_account(marker=marker, limit=self.page_size, prefix=prefix)
            if not page:
                return
            for item in page:
                yield ContainerInfo(item["name"], int(item.get("count", 0)), int(item.get("bytes", 0)))
            marker = page[-1]["name"]

    # -- objects: writing -------------------------------------------------
    def put_object(
        self,
        container: str,
        name: str,
        data: bytes | BinaryIO,
        length: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        validate_container(container)
        validate_object_name(name)
        headers = meta_headers("X-Object-Meta-", metadata)
        known_md5 = hashlib.md5(data, usedforsecurity=False).hexdigest() if isinstance(data, (bytes, bytearray)) else None
        src, start, size, must_close = as_seekable(data, length)
        try:
            if size > self.segment_size:
                etag = self._put_slo(container, name, src, start, size, content_type, headers)
            else:
                old_segments = self._slo_segments(container, name) if self._may_hold_slos(container) else []
                etag = self._put_simple(container, name, src, start, size, content_type, headers, known_md5)
                for seg_c, seg_name in old_segments:
                    self._delete_quietly(seg_c, seg_name)
        finally:
            if must_close:
                src.close()
        return ObjectInfo(
            name=name, size=size, etag=etag, content_type=content_type or "application/octet-stream",
            metadata={k[len("X-Object-Meta-"):].lower(): v for k, v in headers.items()},
        )

    def stream_limit(self) -> int:
        return self.segment_size  # no SLO for a stream: one object, at most what a segment may be

    def put_stream(self, container: str, name: str, blocks: Iterable[bytes], content_type: str | None = None,
                   *, checksum: bool = True) -> ObjectInfo:
        return put_stream(self, container, name, blocks, content_type, checksum=checksum)

    def _put_simple(
        self,
        container: str,
        name: str,
        src: BinaryIO,
        start: int,
        size: int,
        content_type: str | None,
        headers: dict[str, str],
        known_md5: str | None = None,
    ) -> str:
        window = HashingWindow(src, start, size, hashing=known_md5 is None)
        body: Any = _BulkBody(window, size) if size else io.BytesIO(b"")
        with self._ctx("upload", f"object {name!r} to container {container!r}"):
            etag = self.conn.put_object(
                container, name, body, content_length=size, etag=known_md5,
                content_type=content_type, headers=headers,
            )
        sent = known_md5 or (window.hexdigest() if size else EMPTY_MD5)
        if not etag:
            raise BackendError(
                f"swift returned no ETag for object {name!r} in container {container!r}; it may not be stored"
            )
        if size and not window.complete and known_md5 is None:
            raise BackendError(f"object {name!r}: only {window.tell()} of {size} bytes were sent")
        if etag.strip('"') != sent:
            self._delete_quietly(container, name)
            raise DataCorruption(
                f"object {name!r} in container {container!r}: server ETag {etag} does not match the MD5 {sent} of the data sent"
            )
        return sent

    def _put_slo(
        self,
        container: str,
        name: str,
        src: BinaryIO,
        start: int,
        size: int,
        content_type: str | None,
        headers: dict[str, str],
    ) -> str:
        seg_container = segments_container(container)
        if seg_container not in self._segment_containers:
            self.create_container(seg_container)
            self._segment_containers.add(seg_container)
        old_segments = self._slo_segments(container, name)
        segments = plan_segments(name, size, self.segment_size, f"{time.time():.6f}")
        etags: list[str] = []
        try:
            for seg in segments:
                etags.append(self._put_simple(seg_container, seg.name, src, start + seg.offset, seg.length, None, {}))
            manifest = manifest_body(seg_container, segments, etags)
            with self._ctx("upload", f"manifest of object {name!r} to container {container!r}"):
                etag = self.conn.put_object(
                    container, name, io.BytesIO(manifest), content_length=len(manifest),
                    content_type=content_type, headers=headers, query_string="multipart-manifest=put",
                )
        except BaseException:
            for seg in segments[: len(etags)]:
                self._delete_quietly(seg_container, seg.name)
            raise
        expected = slo_etag(etags)
        if not etag or etag.strip('"') != expected:
            raise DataCorruption(f"object {name!r}: manifest ETag {etag!r} does not match the segments' {expected}")
        for seg_c, seg_name in old_segments:
            self._delete_quietly(seg_c, seg_name)
        return expected

    def _may_hold_slos(self, container: str) -> bool:
        """Whether the container's segments container exists (checked once per instance)."""
        seg_container = segments_container(container)
        if seg_container not in self._segment_checked:
            try:
                self.conn.head_container(seg_container)
                self._segment_containers.add(seg_container)
            except Exception:  # noqa: BLE001 - absent (404) or unknown: assume no large objects
                pass
            self._segment_checked.add(seg_container)
        return seg_container in self._segment_containers

    def _slo_segments(self, container: str, name: str) -> list[tuple[str, str]]:
        """Segments of an existing SLO (to clean up after overwriting it); [] otherwise."""
        try:
            headers = self.conn.head_object(container, name)
        except Exception:  # noqa: BLE001 - absent or unreadable: nothing to clean up
            return []
        if headers.get("x-static-large-object", "").lower() != "true":
            return []
        with self._ctx("read", f"manifest of object {name!r}"):
            _h, body = self.conn.get_object(container, name, query_string="multipart-manifest=get")
        return manifest_segment_paths(body)

    def _delete_quietly(self, container: str, name: str) -> None:
        try:
            self.conn.delete_object(container, name)
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass

    # -- objects: reading -------------------------------------------------
    def get_object(self, container: str, name: str, byte_range: tuple[int, int] | None = None) -> ObjectReader:
        validate_container(container)
        validate_object_name(name)
        rng = validate_range(byte_range)
        if rng is not None and rng[1] == 0:
            return SwiftReader(io.BytesIO(), self.head_object(container, name), 0, False)
        headers = {"Range": f"bytes={rng[0]}-{rng[0] + rng[1] - 1}"} if rng else {}
        with self._ctx("download", f"object {name!r} from container {container!r}"):
            resp_headers, body = self.conn.get_object(container, name, resp_chunk_size=IO_CHUNK, headers=headers)
        info = object_info_from_headers(name, resp_headers)
        expected = int(resp_headers.get("content-length", 0))
        if rng is not None and "content-range" not in resp_headers:
            SwiftReader(body, info, 0, False).close()
            raise BackendError(f"object {name!r}: the server ignored the byte range {rng}")
        if rng is not None:
            info = ObjectInfo(info.name, int(resp_headers["content-range"].rsplit("/", 1)[1]), info.etag,
                              info.last_modified, info.content_type, info.metadata)
        slo = resp_headers.get("x-static-large-object", "").lower() == "true"
        return SwiftReader(body, info, expected, verify_md5=rng is None and not slo)

    def head_object(self, container: str, name: str) -> ObjectInfo:
        validate_container(container)
        validate_object_name(name)
        with self._ctx("stat", f"object {name!r} in container {container!r}"):
            headers = self.conn.head_object(container, name)
        return object_info_from_headers(name, headers)

    def delete_object(self, container: str, name: str) -> None:
        validate_container(container)
        validate_object_name(name)
        with self._ctx("delete", f"object {name!r} in container {container!r}"):
            headers = self.conn.head_object(container, name)
            if headers.get("x-static-large-object", "").lower() == "true":
                self._delete_slo(container, name)
            else:
                self.conn.delete_object(container, name)

    def _delete_slo(self, container: str, name: str) -> None:
        """Delete a manifest and its segments. The bulk response is 200 even when parts of it
        failed, so check that the manifest is really gone."""
        self.conn.delete_object(
            container, name, query_string="multipart-manifest=delete", headers={"Accept": "application/json"}
        )
        try:
            self.conn.head_object(container, name)
        except ClientException as exc:
            if exc.http_status == 404:
                return
            raise
        raise BackendError(f"swift did not delete large object {name!r} in container {container!r}; retry the delete")

    def list_objects(
        self,
        container: str,
        prefix: str | None = None,
        delimiter: str | None = None,
        marker: str | None = None,
        limit: int | None = None,
    ) -> Iterator[ObjectInfo | PrefixEntry]:
        validate_container(container)
        limit = validate_limit(limit)
        return limited(self._pages(container, prefix, delimiter, marker or ""), limit)

    def _pages(
        self, container: str, prefix: str | None, delimiter: str | None, marker: str
    ) -> Iterator[ObjectInfo | PrefixEntry]:
        while True:
            with self._ctx("list", f"container {container!r}"):
                _h, page = self.conn.get_container(
                    container, marker=marker, limit=self.page_size, prefix=prefix, delimiter=delimiter
                )
            if not page:
                return
            for item in page:
                if "subdir" in item:
                    yield PrefixEntry(item["subdir"])
                else:
                    yield ObjectInfo(
                        name=item["name"], size=int(item["bytes"]), etag=item.get("hash"),
                        last_modified=item.get("last_modified", "") + "+00:00" if item.get("last_modified") else None,
                        content_type=item.get("content_type"),
                    )
            last = page[-1]
            marker = last.get("subdir") or last["name"]
            if len(page) < self.page_size:
                return

    def copy_object(self, container: str, name: str, dest_container: str, dest_name: str) -> None:
        for c in (container, dest_container):
            validate_container(c)
        for n in (name, dest_name):
            validate_object_name(n)
        with self._ctx("copy", f"object {name!r} of container {container!r}"):
            self.conn.copy_object(container, name, destination=f"/{dest_container}/{dest_name}")

