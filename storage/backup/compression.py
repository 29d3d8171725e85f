"""Per-chunk zstd compression with a raw fallback (pure functions, thread-safe)."""

from __future__ import annotations

import threading

import zstandard

from storage.errors import DataCorruption, InvalidInput

FLAG_RAW = 0x00
FLAG_ZSTD = 0x01
COMPRESSIONS = ("zstd", "none")
# Keep the compressed form only when it saves at least this fraction: random data would
# otherwise cost a decompression on every restore for nothing.
MIN_SAVING = 1 / 64
# Probe: a chunk larger than PROBE_MIN whose first PROBE_BYTES do not compress at level 1
# (a few percent of a full compression's cost) is stored raw without compressing it all.
PROBE_BYTES = 64 * 1024
PROBE_MIN = 256 * 1024
PROBE_MAX_RATIO = 0.97

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def check_compression(name: str, level: int) -> None:
    if name not in COMPRESSIONS:
        raise InvalidInput(f"compression {name!r} is not supported; accepted: {', '.join(COMPRESSIONS)}", field="compression")
    if name == "zstd" and not 1 <= level <= 22:
        raise InvalidInput(f"zstd compression level {level} is not accepted; accepted: 1-22", field="compression_level")


def compress(data: bytes | memoryview, compression: str, level: int) -> tuple[int, bytes | memoryview]:
    """Return (flag, payload): zstd when it saves at least MIN_SAVING, else the raw bytes."""
    if compression == "zstd":
        if len(data) >= PROBE_MIN and not probably_compressible(data):
            return FLAG_RAW, data
        packed = _compressor(level).compress(data)
        if len(packed) <= len(data) * (1 - MIN_SAVING):
            return FLAG_ZSTD, packed
    return FLAG_RAW, data


def probably_compressible(data: bytes | memoryview) -> bool:
    """Compress the first PROBE_BYTES at level 1; False when that saves less than 3%."""
    probe = data[:PROBE_BYTES]
    return len(_compressor(1).compress(probe)) < len(probe) * PROBE_MAX_RATIO


def decompress(flag: int, payload: bytes, expected_size: int | None, *, borrow: bool = False) -> bytes:
    """Undo compress(); raises DataCorruption when the payload is not a valid frame.

    borrow=True returns a raw payload as it is (a memoryview into the caller's buffer, valid as
    long as that buffer is not reused) instead of a copy."""
    if flag == FLAG_RAW:
        return payload if borrow else bytes(payload)
    if flag != FLAG_ZSTD:
        raise DataCorruption(f"unknown compression flag {flag:#x}; accepted: 0x00 (raw), 0x01 (zstd)")
    try:
        if expected_size is not None:
            return _decompressor().decompress(payload, max_output_size=expected_size)
        return _decompressor().decompress(payload)
    except zstandard.ZstdError as exc:
        raise DataCorruption(f"zstd frame does not decompress: {exc}") from None
