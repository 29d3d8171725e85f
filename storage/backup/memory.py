"""Keep big buffers (packs) out of malloc's heaps so a backup's peak RSS stays bounded.

glibc raises its mmap threshold dynamically after a large mmapped block is freed (up to 32
MiB), after which 16 MiB packs come from per-thread arenas that fragment and rarely shrink;
with several uploader threads that cost about 100 MiB of RSS on a 1 GiB backup to Swift.
Pinning the threshold (M_MMAP_THRESHOLD) keeps every block of 4 MiB or more in its own
mapping, returned to the kernel when freed. Process-wide and harmless elsewhere; a no-op
where glibc's mallopt is missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 4 * 1024 * 1024
# Freed heap memory kept for reuse: with the threshold pinned, glibc's trim threshold stays at
# 128 KiB, so every freed 1 MiB chunk buffer was handed back and faulted in again (about 200,000
# page faults, 4% of a 512 MiB backup's CPU). Keeping a few chunks' worth per heap avoids that.
TRIM = 16 * 1024 * 1024
_done = False


def pin_mmap_threshold() -> bool:
    """Set glibc's M_MMAP_THRESHOLD once; True when it was (or already is) set."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM))
    except (OSError, AttributeError):
        return False
    return _done
