"""Input bounds shared by the library, the CLI and the API models (constants and pure checks).

Every value a client gives is bounded here *before* it reaches a parser (``int()``, ``ZoneInfo``,
a regular expression) or the catalog: numbers fit a signed 64-bit column and a documented
maximum, strings and collections have a maximum length, numbers are ASCII digits only. The API
models use the same constants (so OpenAPI states them), the CLI uses them for its options, and the
services check them again (the library is a public entry point too). docs/api.md lists them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from storage.errors import InvalidInput

INT64_MAX = 2**63 - 1  # what a catalog integer column holds

# -- numbers ---------------------------------------------------------------------------------
SIZE_MAX = 2**53  # 8 PiB: the largest volume size, bandwidth limit or byte count accepted
SIZE_TEXT_MAX = 32  # characters of a size string ("1.5G", "1073741824")
NUMBER_DIGITS_MAX = 20  # digits of any number read from text, checked before int()
COUNT_MAX = 1_000_000  # keep_last, keep_daily, ... and other counts
TOKEN_EXPIRY_DAYS_MAX = 3650  # ten years
TOKEN_EXPIRY_SECONDS_MAX = TOKEN_EXPIRY_DAYS_MAX * 86400
DURATION_SECONDS_MAX = 100 * 366 * 86400  # a duration (interval, keep-within) is at most ~100 years
DURATION_TEXT_MAX = 64

# -- strings ---------------------------------------------------------------------------------
NAME_MAX = 128  # volume, snapshot, backup, policy, token names
DESCRIPTION_MAX = 255
TIMEZONE_MAX = 64  # the longest IANA name is 32 characters
SCHEDULE_MAX = 256
URL_MAX = 1024  # repository and object-store URLs
PATH_MAX = 4096  # host paths (key files, restore targets)
REF_MAX = 256  # a name or id given to find something
SECRET_MAX = 256
LIST_MAX = 256  # items of a list in a request (initiators, selected volumes)

# -- labels (volumes, snapshots, backups, policy selectors) --------------------------------------
LABEL_KEY_MAX = 63
LABEL_VALUE_MAX = 255
LABELS_MAX = 64  # labels on one item
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
ACCEPTED_LABELS = (
    f"at most {LABELS_MAX} labels, each KEY=VALUE with KEY of letters, digits, . _ / - (max {LABEL_KEY_MAX} characters, "
    f"starting with a letter or digit) and VALUE a string of at most {LABEL_VALUE_MAX} characters"
)

# -- object metadata (X-Object-Meta-*, container metadata): Swift's own default limits ---------
META_KEY_MAX = 128
META_VALUE_MAX = 256
META_COUNT_MAX = 90
META_TOTAL_MAX = 4096  # bytes of all keys and values together

_ASCII_INT_RE = re.compile(r"^[+]?[0-9]+$", re.ASCII)


def check_int(value: Any, *, field: str, lo: int, hi: int, what: str = "a whole number") -> int:
    """``value`` as an int in ``[lo, hi]``; refuses booleans, floats and non-ASCII digit strings."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} {value!r} is not accepted; accepted: {what} from {lo} to {hi}", field=field)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > NUMBER_DIGITS_MAX + 1 or not _ASCII_INT_RE.fullmatch(text):
            raise InvalidInput(f"{field} {short_repr(value)} is not accepted; accepted: {what} from {lo} to {hi}", field=field)
        value = int(text)
    if not isinstance(value, int):
        raise InvalidInput(f"{field} {short_repr(value)} is not accepted; accepted: {what} from {lo} to {hi}", field=field)
    if not lo <= value <= hi:
        raise InvalidInput(f"{field} {short_repr(value)} is out of range; accepted: {what} from {lo} to {hi}", field=field)
    return value


def check_float(value: Any, *, field: str, lo: float, hi: float, lo_open: bool = False) -> float:
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); refuses booleans, NaN and infinity."""
    low = "greater than" if lo_open else "at least"
    accepted = f"a finite number {low} {lo:g} and at most {hi:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{field} {short_repr(value)} is not accepted; accepted: {accepted}", field=field)
    number = float(value)
    if not math.isfinite(number) or number > hi or number < lo or (lo_open and number == lo):
        raise InvalidInput(f"{field} {short_repr(value)} is out of range; accepted: {accepted}", field=field)
    return number


def check_text(value: Any, *, field: str, max_len: int, min_len: int = 0) -> str:
    """A string of ``min_len..max_len`` characters (checked before any parser sees it)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string; got {type(value).__name__}", field=field)
    if len(value) > max_len:
        raise InvalidInput(
            f"{field} is {len(value)} characters long; accepted: at most {max_len} characters", field=field
        )
    if len(value) < min_len:
        raise InvalidInput(f"{field} must not be empty; accepted: {min_len}-{max_len} characters", field=field)
    return value


def check_count(items: Any, *, field: str, max_items: int) -> None:
    if len(items) > max_items:
        raise InvalidInput(f"{field} has {len(items)} items; accepted: at most {max_items}", field=field)


def check_labels(labels: Mapping[Any, Any] | None, *, field: str = "labels") -> dict[str, str]:
    """Validated labels: a bounded number of KEY=VALUE pairs with bounded keys and values."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidInput(f"{field} must be an object of KEY: VALUE strings; accepted: {ACCEPTED_LABELS}", field=field)
    if len(labels) > LABELS_MAX:
        raise InvalidInput(f"{field} has {len(labels)} labels; accepted: {ACCEPTED_LABELS}", field=field)
    out: dict[str, str] = {}
    for key, value in labels.items():
        if (
            not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key)
            or not isinstance(value, str) or len(value) > LABEL_VALUE_MAX
        ):
            raise InvalidInput(
                f"label {short_repr(key)}={short_repr(value)} is not accepted; accepted: {ACCEPTED_LABELS}", field=field
            )
        out[key] = value
    return out


def parse_label_items(items: list[str] | None, *, field: str = "labels") -> dict[str, str]:
    """``['k=v', ...]`` (CLI options, query strings) -> validated labels."""
    items = items or []
    if len(items) > LABELS_MAX:
        raise InvalidInput(f"{field} has {len(items)} labels; accepted: {ACCEPTED_LABELS}", field=field)
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise InvalidInput(f"label {short_repr(item)} is not KEY=VALUE; accepted: {ACCEPTED_LABELS}", field=field)
        pairs[key] = value
    return check_labels(pairs, field=field)


def check_object_metadata(metadata: Mapping[str, str] | None, *, field: str = "metadata") -> dict[str, str]:
    """Object or container metadata within Swift's limits (key/value length, count, total bytes)."""
    if not metadata:
        return {}
    accepted = (
        f"at most {META_COUNT_MAX} items, keys of at most {META_KEY_MAX} and values of at most "
        f"{META_VALUE_MAX} characters, {META_TOTAL_MAX} bytes in all"
    )
    if len(metadata) > META_COUNT_MAX:
        raise InvalidInput(f"{field} has {len(metadata)} items; accepted: {accepted}", field=field)
    total = 0
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise InvalidInput(f"{field} item {short_repr(key)} is not accepted; accepted: string keys and values", field=field)
        if len(key) > META_KEY_MAX or len(value) > META_VALUE_MAX:
            raise InvalidInput(
                f"{field} item {short_repr(key)} is too long ({len(key)} + {len(value)} characters); accepted: {accepted}",
                field=field,
            )
        total += len(key.encode()) + len(value.encode())
    if total > META_TOTAL_MAX:
        raise InvalidInput(f"{field} is {total} bytes; accepted: {accepted}", field=field)
    return dict(metadata)


def short_repr(value: Any, limit: int = 40) -> str:
    """repr of a value cut to ``limit`` characters: an error never echoes a 50 MB input back."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<a number of {value.bit_length()} bits>"  # repr() of a 5,000-digit int raises
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...' ({len(str(value))} characters)"
