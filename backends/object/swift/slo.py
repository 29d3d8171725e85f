"""Static Large Object planning (pure functions): segment layout, names and manifest.

Segments go to ``<container>_segments`` under
``<object>/slo/<timestamp>/<size>/<segment_size>/<index:08d>`` like the ``swift`` CLI, so
a re-upload never overwrites the segments of the object it replaces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

SEGMENTS_SUFFIX = "_segments"


@dataclass(frozen=True)
class Segment:
    index: int
    offset: int
    length: int
    name: str


def plan_segments(name: str, size: int, segment_size: int, timestamp: str) -> list[Segment]:
    """Split ``size`` bytes into segments of at most ``segment_size`` bytes."""
    if segment_size <= 0:
        raise ValueError("segment_size must be positive")
    count = max(1, -(-size // segment_size))
    base = f"{name}/slo/{timestamp}/{size}/{segment_size}"
    return [
        Segment(i, i * segment_size, min(segment_size, size - i * segment_size), f"{base}/{i:08d}")
        for i in range(count)
    ]


def segments_container(container: str) -> str:
    return container + SEGMENTS_SUFFIX


def manifest_body(seg_container: str, segments: list[Segment], etags: list[str]) -> bytes:
    entries = [
        {"path": f"/{seg_container}/{seg.name}", "etag": etag, "size_bytes": seg.length}
        for seg, etag in zip(segments, etags, strict=True)
    ]
    return json.dumps(entries).encode()


def slo_etag(etags: list[str]) -> str:
    """The ETag Swift reports for an SLO: MD5 of the concatenated segment MD5s."""
    return hashlib.md5("".join(etags).encode(), usedforsecurity=False).hexdigest()


def manifest_segment_paths(manifest_json: bytes) -> list[tuple[str, str]]:
    """(container, object) of every segment of a manifest fetched with multipart-manifest=get."""
    out = []
    for entry in json.loads(manifest_json):
        path = entry.get("name") or entry.get("path") or ""
        container, _, obj = path.lstrip("/").partition("/")
        if container and obj:
            out.append((container, obj))
    return out
