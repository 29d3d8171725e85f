"""Swift listing semantics as pure functions: prefix, delimiter, marker, limit.

Names sort by Unicode code point, which is the UTF-8 byte order Swift's container
databases use. A delimiter listing folds every name that has the delimiter after the prefix
into one pseudo-directory entry (Swift's ``subdir``); a pseudo-directory equal to the
marker is not repeated, so paging with the last returned entry as marker works.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from storage.errors import InvalidInput

from backends.object.base import ObjectInfo, PrefixEntry


def entry_name(entry: ObjectInfo | PrefixEntry) -> str:
    """The marker to continue a listing after this entry."""
    return entry.prefix if isinstance(entry, PrefixEntry) else entry.name


def validate_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise InvalidInput(f"listing limit {limit!r} is not accepted; accepted: an integer >= 0", field="limit")
    return limit


def fold_delimiter(
    infos: Iterable[ObjectInfo | PrefixEntry],
    prefix: str = "",
    delimiter: str | None = None,
    marker: str | None = None,
) -> Iterator[ObjectInfo | PrefixEntry]:
    """Apply prefix, marker and delimiter to objects sorted by name.

    ``infos`` may hold names outside the prefix or before the marker; they are skipped.
    """
    prefix = prefix or ""
    last_dir: str | None = None
    for info in infos:
        if isinstance(info, PrefixEntry):  # a store that already folded a pseudo-directory
            if info.prefix != last_dir and info.prefix != marker and info.prefix.startswith(prefix):
                last_dir = info.prefix
                yield info
            continue
        name = info.name
        if marker is not None and name <= marker:
            continue
        if not name.startswith(prefix):
            if name > prefix:  # sorted input: nothing later can match
                return
            continue
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                subdir = name[: cut + len(delimiter)]
                if subdir != last_dir and subdir != marker:
                    last_dir = subdir
                    yield PrefixEntry(subdir)
                last_dir = subdir
                continue
        yield info


def limited(entries: Iterable[ObjectInfo | PrefixEntry], limit: int | None) -> Iterator[ObjectInfo | PrefixEntry]:
    return iter(entries) if limit is None else islice(entries, limit)
