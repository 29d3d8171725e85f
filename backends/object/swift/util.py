"""Swift helpers: error mapping and header conversion (no I/O of their own)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import urllib3
from keystoneauth1 import exceptions as ks_exceptions
from requests.exceptions import RequestException
from swiftclient.exceptions import ClientException

from backends.object.base import ObjectInfo
from backends.object.timeouts import is_timeout
from storage.errors import (
    AuthenticationFailed,
    BackendError,
    Conflict,
    DataCorruption,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageError,
)

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def endpoint_label(url: str) -> str:
    """scheme://host:port of a URL: never a path with tokens, never userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the configured endpoint"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if host else "the configured endpoint"


def map_client_error(exc: ClientException, op: str, what: str, endpoint: str = "", user: str | None = None) -> StorageError:
    status = exc.http_status
    where = endpoint_label(endpoint) if endpoint else "swift"
    if status == 401:
        who = f" of user {user!r}" if user else ""
        return AuthenticationFailed(f"swift at {where} rejected the credentials{who} (HTTP 401); check user and key")
    if status == 403:
        return PermissionDenied(f"swift at {where} denied {op} of {what} (HTTP 403)")
    if status == 404:
        return NotFound(f"{what} does not exist (swift {op}: HTTP 404)")
    if status == 409:
        return Conflict(f"{what}: conflict (HTTP 409); a container must be empty to be deleted")
    if status == 416:
        return InvalidInput(f"byte range is beyond the end of {what} (HTTP 416)", field="byte_range")
    if status == 422:
        return DataCorruption(f"{what}: the server's MD5 of the data differs from the MD5 sent (HTTP 422)")
    if status is None:
        return BackendError(f"swift {op} of {what} failed: {exc.msg}")
    return BackendError(f"swift {op} of {what} at {where} failed: HTTP {status} {exc.http_reason}".rstrip())


@contextmanager
def swift_errors(op: str, what: str, endpoint: str = "", user: str | None = None) -> Iterator[None]:
    """Turn swiftclient/requests/socket failures into storage.errors (no secrets, no traceback)."""
    try:
        yield
    except StorageError:
        raise
    except ClientException as exc:
        raise map_client_error(exc, op, what, endpoint, user) from None
    except ks_exceptions.http.HttpError as exc:
        where = endpoint_label(endpoint) if endpoint else "keystone"
        if exc.http_status == 401:
            who = f" of user {user!r}" if user else ""
            raise AuthenticationFailed(f"keystone at {where} rejected the credentials{who} (HTTP 401)") from None
        if exc.http_status == 403:
            raise PermissionDenied(f"keystone at {where} denied {op} of {what} (HTTP 403)") from None
        raise BackendError(f"keystone at {where} failed during {op} of {what}: HTTP {exc.http_status}") from None
    except ks_exceptions.ClientException as exc:
        where = endpoint_label(endpoint) if endpoint else "keystone"
        raise BackendError(
            f"keystone/swift at {where} is unreachable or failed during {op} of {what} ({type(exc).__name__})"
        ) from None
    except (RequestException, socket.error, urllib3.exceptions.HTTPError) as exc:
        where = endpoint_label(endpoint) if endpoint else "swift"
        if is_timeout(exc):
            raise BackendError(
                f"swift at {where} did not answer {op} of {what} in time ({type(exc).__name__}, retries exhausted; "
                "see the store's connect_timeout/read_timeout)"
            ) from None
        raise BackendError(
            f"swift at {where} is unreachable or dropped the connection during {op} of {what} "
            f"({type(exc).__name__}, retries exhausted)"
        ) from None


def request_bound(retries: int, connect_timeout: float, read_timeout: float, starting_backoff: float,
                  max_backoff: float) -> float:
    """Pure: the longest one request can take when the server never answers (swiftclient's retry loop:
    retries + 1 attempts, each at most connect + read timeout, a doubling backoff between them)."""
    sleeps, backoff = 0.0, starting_backoff
    for _ in range(retries):
        sleeps += backoff
        backoff = min(backoff * 2, max_backoff)
    return (retries + 1) * (connect_timeout + read_timeout) + sleeps


def meta_headers(prefix: str, metadata: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key or any(c in key for c in ":\r\n\x00 ") or not isinstance(value, str):
            raise InvalidInput(
                f"metadata key {key!r} is not accepted; accepted: non-empty text keys without ':', spaces or newlines",
                field="metadata",
            )
        if any(c in value for c in "\r\n\x00"):
            raise InvalidInput(f"metadata value of {key!r} must not contain newlines or NUL", field="metadata")
        out[prefix + key.lower()] = value
    return out


def _meta(headers: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix):].lower(): v for k, v in headers.items() if k.lower().startswith(prefix)}


def container_meta(headers: Mapping[str, str]) -> dict[str, str]:
    return _meta(headers, "x-container-meta-")


def http_date_to_iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).isoformat(timespec="microseconds")
    except (TypeError, ValueError):
        return None


def object_info_from_headers(name: str, headers: Mapping[str, str]) -> ObjectInfo:
    return ObjectInfo(
        name=name,
        size=int(headers.get("content-length", 0)),
        etag=(headers.get("etag") or "").strip('"') or None,
        last_modified=http_date_to_iso(headers.get("last-modified")),
        content_type=headers.get("content-type"),
        metadata=_meta(headers, "x-object-meta-"),
    )
