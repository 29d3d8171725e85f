"""Serialised listings kept per (query, catalog change counter), answered with an ETag.

A listing is cached under the counter value read *before* it was computed, so its content is at
least as new as that value. A request reads the current counter first and takes the cached body
only when it was stored under a counter at least as high: any write committed before the request
arrived (by this process or another, e.g. storagectl) has bumped the counter in its own
transaction, so the request never gets a listing that misses it. When the counter is None (a
catalog without the counter) nothing is cached.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Listing:
    version: int | None  # catalog change counter read before the body was computed
    body: bytes
    etag: str  # strong validator: quoted hash of the body


def make_listing(version: int | None, body: bytes) -> Listing:
    return Listing(version, body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')


def is_fresh(listing: Listing, current_version: int | None) -> bool:
    """Whether a listing stored under ``listing.version`` may answer a request that read ``current_version``."""
    return listing.version is not None and current_version is not None and listing.version >= current_version


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against a list of entity tags, or ``*``."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


class ListingCache:
    """A small LRU of the newest listing per query key (thread-safe)."""

    def __init__(self, max_entries: int = 32) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Listing] = OrderedDict()
        self._max = max_entries

    def lookup(self, key: Hashable, current_version: int | None) -> Listing | None:
        with self._lock:
            listing = self._entries.get(key)
            if listing is None or not is_fresh(listing, current_version):
                return None
            self._entries.move_to_end(key)
            return listing

    def store(self, key: Hashable, listing: Listing) -> None:
        if listing.version is None:
            return
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old.version is not None and old.version > listing.version:
                return  # a newer listing got here first
            self._entries[key] = listing
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def get(
        self,
        key: Hashable,
        read_version: Callable[[], int | None],
        compute: Callable[[], bytes],
        share: Callable[[Hashable, Callable[[], Listing]], Listing] | None = None,
    ) -> Listing:
        """The listing for ``key``: cached if still fresh, else computed (through ``share``, e.g. a Coalescer)."""
        cached = self.lookup(key, read_version())
        if cached is not None:
            return cached

        def build() -> Listing:
            listing = make_listing(read_version(), compute())  # counter first, then the data
            self.store(key, listing)
            return listing

        return share(key, build) if share is not None else build()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_APP_LOCK = threading.Lock()


def cache_of(state: object) -> ListingCache:
    """The ListingCache kept on an app's ``state`` (created on first use; one per app and catalog)."""
    cache = getattr(state, "listing_cache", None)
    if cache is None:
        with _APP_LOCK:
            cache = getattr(state, "listing_cache", None)
            if cache is None:
                cache = ListingCache()
                setattr(state, "listing_cache", cache)
    return cache
