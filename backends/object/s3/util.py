"""S3 helpers: endpoint parsing, bucket-name rules and error mapping (no I/O of their own)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

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

ACCEPTED_BUCKET = "3-63 characters: lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_bucket_name(name: str) -> str:
    if not _BUCKET_RE.match(name) or ".." in name:
        raise InvalidInput(f"bucket name {name!r} is not accepted by S3; accepted: {ACCEPTED_BUCKET}", field="container")
    return name


def parse_endpoint(endpoint: str, secure: Any = None) -> tuple[str, bool]:
    """(host:port, secure) from ``http(s)://host:port`` or ``host:port``."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise InvalidInput(
                f"s3 endpoint {endpoint!r} is not accepted; accepted: http(s)://host[:port] or host[:port]", field="endpoint"
            )
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        is_secure = parts.scheme == "https"
    else:
        host, is_secure = endpoint, False
    if secure is not None:
        is_secure = str(secure).lower() in ("1", "true", "yes")
    return host, is_secure


def meta_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k[len("x-amz-meta-"):].lower(): v for k, v in headers.items() if k.lower().startswith("x-amz-meta-")}


_NOT_FOUND = ("NoSuchKey", "NoSuchBucket", "NoSuchUpload", "ResourceNotFound", "NoSuchObject")
_AUTH = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken")


def map_s3_error(exc: S3Error, op: str, what: str, endpoint: str, access_key: str | None) -> StorageError:
    code = exc.code or ""
    if code in _NOT_FOUND:
        return NotFound(f"{what} does not exist (s3 {op}: {code})")
    if code in _AUTH:
        who = f" for access key {access_key!r}" if access_key else ""
        return AuthenticationFailed(f"s3 at {endpoint} rejected the credentials{who} ({code}); check the access key, secret key")
    if code == "AccessDenied":
        return PermissionDenied(
            f"s3 at {endpoint} denied {op} of {what} (AccessDenied); check the access key, secret key and permissions"
        )
    if code in ("BucketNotEmpty", "BucketAlreadyExists", "OperationAborted"):
        return Conflict(f"{what}: {code}; a bucket must be empty to be deleted")
    if code == "InvalidRange":
        return InvalidInput(f"byte range is beyond the end of {what} (InvalidRange)", field="byte_range")
    if code in ("BadDigest", "InvalidDigest"):
        return DataCorruption(f"{what}: the server's MD5 of the data differs from the MD5 sent ({code})")
    if code in ("InvalidBucketName", "KeyTooLongError", "InvalidArgument", "EntityTooSmall", "EntityTooLarge"):
        return InvalidInput(f"s3 refused {op} of {what}: {code}")
    return BackendError(f"s3 {op} of {what} at {endpoint} failed: {code or 'error'}")


@contextmanager
def s3_errors(op: str, what: str, endpoint: str = "s3", access_key: str | None = None) -> Iterator[None]:
    """Turn minio/urllib3 failures into storage.errors (no secrets, no traceback)."""
    try:
        yield
    except StorageError:
        raise
    except S3Error as exc:
        raise map_s3_error(exc, op, what, endpoint, access_key) from None
    except ServerError as exc:
        raise BackendError(f"s3 at {endpoint} failed during {op} of {what}: HTTP {exc.status_code}") from None
    except InvalidResponseError as exc:
        status = getattr(exc, "_code", None)
        if status in (401, 403):
            raise AuthenticationFailed(f"s3 at {endpoint} rejected the request for {what} (HTTP {status})") from None
        raise BackendError(f"s3 at {endpoint} sent an invalid response during {op} of {what}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if is_timeout(exc):
            raise BackendError(
                f"s3 at {endpoint} did not answer {op} of {what} in time ({type(exc).__name__}, retries exhausted; "
                "see the store's connect_timeout/read_timeout)"
            ) from None
        raise BackendError(
            f"s3 at {endpoint} is unreachable or dropped the connection during {op} of {what} "
            f"({type(exc).__name__}, retries exhausted)"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"s3 {op} of {what}: {exc}") from None
