"""Validation of container and object names shared by every object store (pure functions).

The limits are Swift's defaults so that what one store accepts, the others accept too:
a container name is 1-256 bytes of UTF-8 without '/' or NUL; an object name is 1-1024 bytes
of UTF-8 without NUL ('/' allowed, as pseudo-directories).
"""

from __future__ import annotations

from storage.errors import InvalidInput

CONTAINER_NAME_MAX = 256
OBJECT_NAME_MAX = 1024
ACCEPTED_CONTAINER = f"1-{CONTAINER_NAME_MAX} bytes of UTF-8, no '/', no NUL, not '.' or '..'"
ACCEPTED_OBJECT = f"1-{OBJECT_NAME_MAX} bytes of UTF-8, no NUL ('/' is allowed)"


def _utf8_len(text: str, what: str, accepted: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} {text!r} is not valid UTF-8; accepted: {accepted}", field="name") from None


def validate_container(name: object) -> str:
    """Return name if it is an acceptable container name, else raise InvalidInput."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"container name must not be empty; accepted: {ACCEPTED_CONTAINER}", field="container")
    size = _utf8_len(name, "container name", ACCEPTED_CONTAINER)
    if size > CONTAINER_NAME_MAX:
        raise InvalidInput(
            f"container name is {size} bytes long; accepted: {ACCEPTED_CONTAINER}", field="container"
        )
    if "/" in name or "\x00" in name or name in (".", ".."):
        raise InvalidInput(f"container name {name!r} is not accepted; accepted: {ACCEPTED_CONTAINER}", field="container")
    return name


def validate_object_name(name: object) -> str:
    """Return name if it is an acceptable object name, else raise InvalidInput."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"object name must not be empty; accepted: {ACCEPTED_OBJECT}", field="object")
    size = _utf8_len(name, "object name", ACCEPTED_OBJECT)
    if size > OBJECT_NAME_MAX:
        raise InvalidInput(f"object name is {size} bytes long; accepted: {ACCEPTED_OBJECT}", field="object")
    if "\x00" in name:
        raise InvalidInput(f"object name {name!r} contains NUL; accepted: {ACCEPTED_OBJECT}", field="object")
    return name


def validate_range(byte_range: tuple[int, int] | None) -> tuple[int, int] | None:
    """Check an (offset, length) range: both non-negative integers."""
    if byte_range is None:
        return None
    try:
        offset, length = byte_range
    except (TypeError, ValueError):
        raise InvalidInput(f"byte range {byte_range!r} is not (offset, length)", field="byte_range") from None
    if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 0:
        raise InvalidInput(
            f"byte range {byte_range!r} is not accepted; accepted: (offset, length) with offset >= 0 and length >= 0",
            field="byte_range",
        )
    return offset, length
