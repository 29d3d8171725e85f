"""Changed blocks between two thin snapshots with ``thin_delta`` (pure parsing + the command).

thin_delta reads the pool's metadata device; on a live pool it must read a metadata snapshot
(``dmsetup message <pool>-tpool 0 reserve_metadata_snap``, released afterwards), and the thin
device ids come from ``lvs -o thin_id``.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

# thin_delta --verbose output elements: same (unchanged), different, left_only, right_only.
CHANGED = {"different", "left_only", "right_only"}


def parse_thin_delta(xml_text: str) -> tuple[int, list[tuple[int, int]]]:
    """(data block size in bytes, merged changed ranges in bytes) from thin_delta XML."""
    root = ET.fromstring(xml_text)
    superblock = root if root.tag == "superblock" else root.find("superblock")
    if superblock is None:
        raise ValueError("thin_delta output has no <superblock>")
    block_bytes = int(superblock.get("data_block_size", "0")) * 512
    if block_bytes <= 0:
        raise ValueError("thin_delta output has no data_block_size")
    ranges: list[tuple[int, int]] = []
    for element in superblock.iter():
        if element.tag not in CHANGED:
            continue
        begin = int(element.get("begin", "0")) * block_bytes
        length = int(element.get("length", "0")) * block_bytes
        if length:
            ranges.append((begin, length))
    return block_bytes, merge_ranges(ranges)


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or touching (offset, length) ranges."""
    merged: list[tuple[int, int]] = []
    for offset, length in sorted(ranges):
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            last_offset, last_length = merged[-1]
            merged[-1] = (last_offset, max(last_offset + last_length, offset + length) - last_offset)
        else:
            merged.append((offset, length))
    return merged


def clip_ranges(ranges: list[tuple[int, int]], size_bytes: int) -> list[tuple[int, int]]:
    """Ranges cut to [0, size_bytes) (a pool block can reach past a volume's end)."""
    out = []
    for offset, length in ranges:
        end = min(offset + length, size_bytes)
        if offset < end:
            out.append((offset, end - offset))
    return out


def thin_delta_command(metadata_device: str, base_thin_id: int, thin_id: int) -> list[str]:
    return ["thin_delta", "--metadata-snap", "--snap1", str(base_thin_id), "--snap2", str(thin_id), metadata_device]


def thin_ids(lvs_output: str) -> dict[str, int]:
    """{lv_name: thin device id} from `lvs -o lv_name,thin_id --separator '|'` (thin LVs only)."""
    ids: dict[str, int] = {}
    for line in lvs_output.splitlines():
        if "|" not in line:
            continue
        name, thin_id = (p.strip() for p in line.split("|")[:2])
        if thin_id:
            ids[name] = int(thin_id)
    return ids


def sample_unchanged(
    ranges: list[tuple[int, int]], size_bytes: int, block_bytes: int, count: int, rng: random.Random
) -> list[int]:
    """Up to count distinct block offsets in [0, size_bytes) outside every changed range (pure)."""
    changed = merge_ranges(ranges)
    blocks = size_bytes // block_bytes
    if blocks <= 0 or count <= 0:
        return []

    def unchanged(offset: int) -> bool:
        return all(not (o < offset + block_bytes and offset < o + n) for o, n in changed)

    picks: set[int] = set()
    for _ in range(count * 20):  # random probes; a pool that changed almost everywhere yields fewer
        if len(picks) >= count:
            break
        offset = rng.randrange(blocks) * block_bytes
        if unchanged(offset):
            picks.add(offset)
    return sorted(picks)
