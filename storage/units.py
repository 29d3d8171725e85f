"""Parsing and formatting of byte sizes (pure functions)."""

from __future__ import annotations

import re
from decimal import Decimal

from storage.bounds import NUMBER_DIGITS_MAX, SIZE_MAX, SIZE_TEXT_MAX, short_repr
from storage.errors import InvalidInput

_UNITS = {
    "": 1, "B": 1,
    "K": 1024, "KB": 1000, "KIB": 1024,
    "M": 1024**2, "MB": 1000**2, "MIB": 1024**2,
    "G": 1024**3, "GB": 1000**3, "GIB": 1024**3,
    "T": 1024**4, "TB": 1000**4, "TIB": 1024**4,
    "P": 1024**5, "PB": 1000**5, "PIB": 1024**5,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$", re.ASCII)  # ASCII digits only: no "８M"
ACCEPTED_SIZES = (
    "a positive number of bytes or a number with a unit: K, M, G, T, P (powers of 1024), KB/MB/GB/TB (powers of 1000), "
    f"KiB/MiB/GiB/TiB; e.g. 512M, 10G, 1T; at most {SIZE_MAX // 1024**5}P"
)


def parse_size(text: str | int, *, field: str = "size") -> int:
    """Parse '512M', '10G', '1T', '1.5G' or a plain byte count into bytes (1 .. bounds.SIZE_MAX).

    Binary units (K, M, G, T) are powers of 1024, like `lvcreate -L` and `truncate -s`. Digits are
    ASCII only, the text is bounded before any conversion (no 5,000-digit ``int()``), and the
    arithmetic is exact (Decimal), so no float ever becomes infinity.
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise InvalidInput(f"{field} {short_repr(text)} is not a size; accepted: {ACCEPTED_SIZES}", field=field)
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE_RE.match(text) if len(text) <= SIZE_TEXT_MAX else None
        unit = m.group(2).upper() if m else None
        if not m or unit not in _UNITS or len(m.group(1)) > NUMBER_DIGITS_MAX:
            raise InvalidInput(f"{field} {short_repr(text)} is not a size; accepted: {ACCEPTED_SIZES}", field=field)
        value = int(Decimal(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise InvalidInput(f"{field} {short_repr(text)} must be greater than zero; accepted: {ACCEPTED_SIZES}", field=field)
    if value > SIZE_MAX:
        raise InvalidInput(f"{field} {short_repr(text)} is too large; accepted: {ACCEPTED_SIZES}", field=field)
    return value


def round_up(value: int, granularity: int) -> int:
    """Round value up to a multiple of granularity."""
    return -(-value // granularity) * granularity


def format_size(n: int | float, *, binary: bool = True) -> str:
    """Human size: 1.5G style (binary units, like `swift list --lh` and `ls -h`)."""
    step = 1024.0 if binary else 1000.0
    suffixes = ["", "K", "M", "G", "T", "P", "E"]
    value = float(n)
    for suffix in suffixes:
        if abs(value) < step or suffix == suffixes[-1]:
            if suffix == "":
                return f"{int(value)}"
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
        value /= step
    return str(n)  # pragma: no cover
